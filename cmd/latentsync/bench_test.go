package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// BenchmarkPipeline is `make bench`: for 10 s clips at 256x256 and 512x512 it
// prints each stage's time beside a plain ffmpeg decode+encode of the same
// clip, and the peak RSS of a 10 s against a 60 s clip. Ratios, measured in
// one run on one machine, are the figures to compare across changes.
func BenchmarkPipeline(b *testing.B) {
	bin, err := filepath.Abs("../../bin/latentsync")
	if err != nil {
		b.Fatal(err)
	}
	if _, err := os.Stat(bin); err != nil {
		b.Skip("bin/latentsync not built: run `make bench`")
	}
	portrait := "../../.deps/astronaut.png"
	speech := "../../testdata/sample/speech.wav"
	for _, p := range []string{portrait, speech} {
		if _, err := os.Stat(p); err != nil {
			b.Skipf("%s missing: run `make bench`", p)
		}
	}
	dir := b.TempDir()
	for range b.N {
		fmt.Printf("\n== latentsync pipeline vs plain ffmpeg transcode (stand-in bundle, CPU) ==\n")
		for _, size := range []int{256, 512} {
			clip := makeBenchClip(b, dir, portrait, speech, size, 10)
			plain := timeTranscode(b, clip, filepath.Join(dir, fmt.Sprintf("plain-%d.mp4", size)))
			rep, _ := runBench(b, bin, clip, filepath.Join(dir, fmt.Sprintf("out-%d.mp4", size)))
			fmt.Printf("\n10 s clip at %dx%d: %d frames\n", size, size, rep.Frames)
			fmt.Printf("  %-20s %8s %8s\n", "stage", "seconds", "x ffmpeg")
			for _, s := range rep.Stages {
				fmt.Printf("  %-20s %8.3f %8.2f\n", s.Stage, s.Seconds, s.Seconds/plain)
			}
			fmt.Printf("  %-20s %8.3f %8.2f\n", "00|load-bundle", rep.LoadSeconds, rep.LoadSeconds/plain)
			fmt.Printf("  %-20s %8.3f %8.2f\n", "pipeline total", rep.TotalSeconds, rep.TotalSeconds/plain)
			fmt.Printf("  %-20s %8.3f %8.2f\n", "ffmpeg transcode", plain, 1.0)
		}
		short := makeBenchClip(b, dir, portrait, speech, 512, 10)
		long := makeBenchClip(b, dir, portrait, speech, 512, 60)
		_, rssShort := runBench(b, bin, short, filepath.Join(dir, "rss-10.mp4"))
		_, rssLong := runBench(b, bin, long, filepath.Join(dir, "rss-60.mp4"))
		fmt.Printf("\npeak RSS at 512x512: 10 s clip %.0f MiB, 60 s clip %.0f MiB, ratio %.3f (target <= 1.2)\n",
			rssShort, rssLong, rssLong/rssShort)
	}
}

// makeBenchClip animates the portrait into a clip of the given side and
// length with the sample speech looped under it.
func makeBenchClip(b *testing.B, dir, portrait, speech string, size, seconds int) string {
	b.Helper()
	out := filepath.Join(dir, fmt.Sprintf("clip-%d-%ds.mp4", size, seconds))
	if _, err := os.Stat(out); err == nil {
		return out
	}
	zoom := fmt.Sprintf("crop=300:300:75:0,scale=1024:1024,zoompan=z='1.04+0.02*sin(2*PI*on/90)':"+
		"x='(iw-iw/zoom)/2+10*sin(2*PI*on/70)':y='(ih-ih/zoom)/2+8*sin(2*PI*on/110)':d=1:s=%dx%d:fps=25,format=yuv420p", size, size)
	cmd := exec.Command("ffmpeg", "-v", "error", "-y", "-loop", "1", "-framerate", "25", "-i", portrait,
		"-stream_loop", "-1", "-i", speech, "-vf", zoom, "-t", fmt.Sprint(seconds),
		"-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-g", "50", "-c:a", "aac", out)
	if msg, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("make clip: %v: %s", err, msg)
	}
	return out
}

// timeTranscode is the baseline: decode the clip and encode it again with the
// same codecs and preset the pipeline uses.
func timeTranscode(b *testing.B, in, out string) float64 {
	b.Helper()
	start := time.Now()
	cmd := exec.Command("ffmpeg", "-v", "error", "-y", "-i", in, "-c:v", "libx264", "-preset", "veryfast",
		"-pix_fmt", "yuv420p", "-c:a", "aac", out)
	if msg, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("transcode: %v: %s", err, msg)
	}
	return time.Since(start).Seconds()
}

// runBench runs the CLI on a clip (its own audio as the speech) and returns
// its report and its peak RSS in MiB as the kernel measured it.
func runBench(b *testing.B, bin, clip, out string) (runReport, float64) {
	b.Helper()
	cmd := exec.Command(bin, "run", "--video", clip, "--audio", clip, "--out", out, "--json")
	cmd.Stderr = os.Stderr
	stdout, err := cmd.Output()
	if err != nil {
		b.Fatalf("latentsync run %s: %v", clip, err)
	}
	var rep runReport
	if err := json.Unmarshal(stdout, &rep); err != nil {
		b.Fatalf("report of %s: %v: %s", clip, err, stdout)
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	return rep, float64(ru.Maxrss) / 1024
}
