// Command gen writes the stand-in model bundle (networks and manifest.json)
// and, with -eval-out, the stand-in evaluation bundle (FID/FVD networks).
//
//	go run ./gpuworker/standin/gen -out testdata/bundle -eval-out testdata/evalbundle
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
	evalOut := flag.String("eval-out", "", "evaluation bundle directory to write into (none when empty)")
	flag.Parse()
	if _, err := standin.Write(*out, *res); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
	if *evalOut == "" {
		return
	}
	if _, err := standin.WriteEval(*evalOut); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}
