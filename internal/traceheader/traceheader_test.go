package traceheader_test

import (
	"testing"

	"github.com/latentsync/latentsync-service/internal/traceheader"
)

func TestParse(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want traceheader.Header
	}{
		{"Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
			traceheader.Header{Root: "1-5759e988-bd862e3fe1be46a994272793", Parent: "53995c3f42cd8ad8", Sampled: "1"}},
		{"Sampled=0; Root=1-5759e988-bd862e3fe1be46a994272793 ; Lineage=a87bd80c:1",
			traceheader.Header{Root: "1-5759e988-bd862e3fe1be46a994272793", Sampled: "0"}},
		{"Root=1-test", traceheader.Header{Root: "1-test"}},
		{"", traceheader.Header{}},
		{"garbage", traceheader.Header{}},
	} {
		if got := traceheader.Parse(tc.in); got != tc.want {
			t.Errorf("Parse(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
		if got := traceheader.TraceID(tc.in); got != tc.want.Root {
			t.Errorf("TraceID(%q) = %q, want %q", tc.in, got, tc.want.Root)
		}
	}
}
