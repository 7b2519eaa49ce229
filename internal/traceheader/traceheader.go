// Package traceheader reads the X-Ray trace header (X-Amzn-Trace-Id) that
// travels from the API request through the job record and the queue
// message, so log lines, metrics and traces of one job share its trace id.
// It has no dependency on the X-Ray SDK, so every binary can use it.
package traceheader

import "strings"

// Header is a parsed "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1".
type Header struct {
	Root    string // the trace id
	Parent  string // the caller's segment id
	Sampled string // "1", "0", "?" or "" (undecided)
}

// Parse reads h; unknown keys are ignored, missing ones stay empty.
func Parse(h string) Header {
	var out Header
	for part := range strings.SplitSeq(h, ";") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			continue
		}
		switch k {
		case "Root":
			out.Root = v
		case "Parent":
			out.Parent = v
		case "Sampled":
			out.Sampled = v
		}
	}
	return out
}

// TraceID is the Root of h, or "".
func TraceID(h string) string { return Parse(h).Root }
