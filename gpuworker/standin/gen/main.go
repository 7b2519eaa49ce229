// Command gen writes the stand-in model bundle (networks and manifest.json).
//
//	go run ./gpuworker/standin/gen -out testdata/bundle
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/latentsync/latentsync-service/gpuworker/standin"
)

func main() {
	out := flag.String("out", "testdata/bundle", "bundle directory to write into")
	res := flag.Int("resolution", standin.DefaultResolution, "face crop side in pixels")
	flag.Parse()
	if _, err := standin.Write(*out, *res); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}
