package media_test

import (
	"context"
	"errors"
	"io"
	"path/filepath"
	"testing"

	"github.com/latentsync/latentsync-service/internal/media"
	"github.com/latentsync/latentsync-service/internal/media/mediatest"
	"github.com/latentsync/latentsync-service/internal/raster"
)

// The 10 s 512x512 clip of the brief: go test -run - -bench . ./internal/media/

func benchClip(b *testing.B) string {
	b.Helper()
	return mediatest.MP4(b, mediatest.Clip{W: 512, H: 512, Seconds: 10, Audio: true})
}

func BenchmarkDecode512x512x10s(b *testing.B) {
	path := benchClip(b)
	buf := raster.New(512, 512)
	for b.Loop() {
		if n := decodeAll(b, path, buf, nil); n != 250 {
			b.Fatalf("%d frames", n)
		}
	}
}

func BenchmarkEncode512x512x10s(b *testing.B) {
	path := benchClip(b)
	frame := gradient(512, 512, 0)
	out := filepath.Join(b.TempDir(), "out.mp4")
	for b.Loop() {
		enc, err := media.CreateEncoder(context.Background(), out, media.EncodeOptions{Width: 512, Height: 512, AudioPath: path})
		if err != nil {
			b.Fatal(err)
		}
		for i := range 250 {
			frame.Pix[0] = byte(i)
			if err := enc.Write(frame); err != nil {
				b.Fatal(err)
			}
		}
		if err := enc.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTranscode512x512x10s decodes and re-encodes concurrently, as the
// pipeline's two ffmpeg processes run.
func BenchmarkTranscode512x512x10s(b *testing.B) {
	path := benchClip(b)
	buf := raster.New(512, 512)
	out := filepath.Join(b.TempDir(), "out.mp4")
	for b.Loop() {
		enc, err := media.CreateEncoder(context.Background(), out, media.EncodeOptions{Width: 512, Height: 512, AudioPath: path})
		if err != nil {
			b.Fatal(err)
		}
		if n := decodeAll(b, path, buf, enc); n != 250 {
			b.Fatalf("%d frames", n)
		}
		if err := enc.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

func decodeAll(b *testing.B, path string, buf *raster.RGB, enc *media.Encoder) int {
	r, err := media.OpenFrames(context.Background(), path, media.DecodeOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	n := 0
	for {
		err := r.Next(buf)
		if errors.Is(err, io.EOF) {
			return n
		}
		if err != nil {
			b.Fatal(err)
		}
		if enc != nil {
			if err := enc.Write(buf); err != nil {
				b.Fatal(err)
			}
		}
		n++
	}
}
