package face

import (
	"context"
	"errors"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/latentsync/latentsync-service/gpuworker/infer"
	"github.com/latentsync/latentsync-service/internal/raster"
)

const (
	defaultORTLib = "../../.deps/onnxruntime-1.24.1/libonnxruntime.so.1.24.1"
	backModel     = "../../testdata/bundle/face_detection_back_256x256_barracuda.onnx"
	frontModel    = "../../testdata/bundle/face_detection_front_128x128_barracuda.onnx"
	portraitPath  = "../../.deps/astronaut.png"
)

// openModels opens ONNX Runtime and both BlazeFace models, or skips when the
// library or the models are not installed. ONNX Runtime allows one runtime
// per process, so every test that needs it goes through this one function
// from a single top-level test.
func openModels(t *testing.T) (back, front *infer.Session) {
	t.Helper()
	lib := os.Getenv("LATENTSYNC_ORT_LIB")
	if lib == "" {
		abs, err := filepath.Abs(defaultORTLib) // the loader wants an absolute path
		if err != nil {
			t.Fatal(err)
		}
		lib = abs
	}
	for _, p := range []string{lib, backModel, frontModel} {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("needs %s: %v", p, err)
		}
	}
	rt, err := infer.NewRuntime(infer.RuntimeOptions{LibraryPath: lib, IntraOpThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close() })
	open := func(p string) *infer.Session {
		s, err := rt.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	return open(backModel), open(frontModel)
}

func loadPortrait(t testing.TB) *raster.RGB {
	t.Helper()
	f, err := os.Open(portraitPath)
	if err != nil {
		t.Skipf("needs the astronaut portrait: %v", err)
	}
	defer f.Close()
	im, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	return toRaster(im)
}

func toRaster(im image.Image) *raster.RGB {
	b := im.Bounds()
	out := raster.New(b.Dx(), b.Dy())
	for y := 0; y < b.Dy(); y++ {
		for x := 0; x < b.Dx(); x++ {
			c := color.RGBAModel.Convert(im.At(b.Min.X+x, b.Min.Y+y)).(color.RGBA)
			o := out.Offset(x, y)
			out.Pix[o], out.Pix[o+1], out.Pix[o+2] = c.R, c.G, c.B
		}
	}
	return out
}

func toImage(r *raster.RGB) *image.RGBA {
	im := image.NewRGBA(image.Rect(0, 0, r.W, r.H))
	for i := 0; i < r.W*r.H; i++ {
		im.Pix[4*i], im.Pix[4*i+1], im.Pix[4*i+2], im.Pix[4*i+3] = r.Pix[3*i], r.Pix[3*i+1], r.Pix[3*i+2], 255
	}
	return im
}

// writeDebug renders detections into dir/name when LATENTSYNC_FACE_DEBUG names
// a directory: the way the keypoint ranges below were checked by eye.
func writeDebug(t *testing.T, name string, img *raster.RGB, dets []Detection) {
	dir := os.Getenv("LATENTSYNC_FACE_DEBUG")
	if dir == "" {
		return
	}
	im := toImage(img)
	dot := func(p Point, c color.Color) {
		draw.Draw(im, image.Rect(int(p.X)-2, int(p.Y)-2, int(p.X)+3, int(p.Y)+3), image.NewUniform(c), image.Point{}, draw.Src)
	}
	colors := []color.Color{color.RGBA{255, 0, 0, 255}, color.RGBA{0, 255, 0, 255}, color.RGBA{0, 0, 255, 255},
		color.RGBA{255, 255, 0, 255}, color.RGBA{255, 0, 255, 255}, color.RGBA{0, 255, 255, 255}}
	for _, d := range dets {
		for x := d.Box.X0; x < d.Box.X1; x++ {
			dot(Point{x, d.Box.Y0}, color.White)
			dot(Point{x, d.Box.Y1}, color.White)
		}
		for y := d.Box.Y0; y < d.Box.Y1; y++ {
			dot(Point{d.Box.X0, y}, color.White)
			dot(Point{d.Box.X1, y}, color.White)
		}
		for k, p := range d.Keypoints {
			dot(p, colors[k])
		}
	}
	f, err := os.Create(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := png.Encode(f, im); err != nil {
		t.Fatal(err)
	}
}

// noFaceFrames are frames that must give no detection.
func noFaceFrames() map[string]*raster.RGB {
	rng := rand.New(rand.NewPCG(1, 2))
	noise := raster.New(512, 384)
	for i := range noise.Pix {
		noise.Pix[i] = byte(rng.IntN(256))
	}
	grad := raster.New(640, 360)
	for y := 0; y < grad.H; y++ {
		for x := 0; x < grad.W; x++ {
			o := grad.Offset(x, y)
			grad.Pix[o], grad.Pix[o+1], grad.Pix[o+2] = byte(x*255/grad.W), byte(y*255/grad.H), 128
		}
	}
	flat := raster.New(256, 256)
	for i := range flat.Pix {
		flat.Pix[i] = 180
	}
	return map[string]*raster.RGB{"noise": noise, "gradient": grad, "flat": flat, "black": raster.New(300, 200)}
}

// span is an inclusive range a value must fall in.
type span struct{ lo, hi float64 }

func (s span) has(v float64) bool { return v >= s.lo && v <= s.hi }

// pointIn asserts p lies in the box [x] x [y].
func pointIn(t *testing.T, what string, p Point, x, y span) {
	t.Helper()
	if !x.has(p.X) || !y.has(p.Y) {
		t.Errorf("%s at (%.1f, %.1f), want x in %v and y in %v", what, p.X, p.Y, x, y)
	}
}

// paste copies src into dst at (ox, oy), shrunk by an integer factor with
// box averaging.
func paste(dst, src *raster.RGB, ox, oy, shrink int) {
	for y := 0; y < src.H/shrink; y++ {
		for x := 0; x < src.W/shrink; x++ {
			var acc [3]int
			for sy := 0; sy < shrink; sy++ {
				for sx := 0; sx < shrink; sx++ {
					o := src.Offset(x*shrink+sx, y*shrink+sy)
					for c := range acc {
						acc[c] += int(src.Pix[o+c])
					}
				}
			}
			o := dst.Offset(ox+x, oy+y)
			for c := range acc {
				dst.Pix[o+c] = byte(acc[c] / (shrink * shrink))
			}
		}
	}
}

// The keypoint ranges were read off a debug render (LATENTSYNC_FACE_DEBUG):
// in the 512x512 astronaut photo Eileen Collins' pupils are near (203, 102)
// and (248, 103), the nose tip near (224, 128), the mouth centre near
// (224, 149).
func TestBlazeFace(t *testing.T) {
	back, front := openModels(t)
	ctx := context.Background()
	portrait := loadPortrait(t)
	det, err := NewDetector(back)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("portrait back model", func(t *testing.T) {
		dets, err := det.Detect(ctx, portrait)
		if err != nil {
			t.Fatal(err)
		}
		writeDebug(t, "back256_portrait.png", portrait, dets)
		if len(dets) != 1 {
			t.Fatalf("%d faces, want exactly 1: %+v", len(dets), dets)
		}
		d := dets[0]
		t.Logf("box %.1f score %.3f keypoints %.1f", d.Box, d.Score, d.Keypoints)
		if d.Score < 0.75 {
			t.Errorf("score %.3f, want >= 0.75", d.Score)
		}
		pointIn(t, "box centre", d.Box.Center(), span{218, 232}, span{118, 134})
		if w, h := d.Box.W(), d.Box.H(); !(span{90, 120}).has(w) || !(span{90, 120}).has(h) {
			t.Errorf("box %.0fx%.0f, want about 104x104", w, h)
		}
		kp := d.Keypoints
		pointIn(t, "right eye", kp[RightEye], span{199, 207}, span{98, 106})
		pointIn(t, "left eye", kp[LeftEye], span{244, 252}, span{99, 107})
		pointIn(t, "nose tip", kp[NoseTip], span{219, 229}, span{122, 134})
		pointIn(t, "mouth", kp[Mouth], span{218, 230}, span{143, 155})
		pointIn(t, "right ear", kp[RightEar], span{168, 186}, span{100, 125})
		pointIn(t, "left ear", kp[LeftEar], span{264, 282}, span{100, 125})
	})

	t.Run("portrait front model", func(t *testing.T) {
		d128, err := NewDetector(front)
		if err != nil {
			t.Fatal(err)
		}
		d, ok, err := d128.DetectLargest(ctx, portrait)
		if err != nil || !ok {
			t.Fatalf("no face: %v", err)
		}
		// The near-face model is a little less precise on this framing.
		pointIn(t, "right eye", d.Keypoints[RightEye], span{197, 209}, span{95, 109})
		pointIn(t, "left eye", d.Keypoints[LeftEye], span{242, 254}, span{97, 111})
		pointIn(t, "nose tip", d.Keypoints[NoseTip], span{216, 230}, span{120, 134})
	})

	t.Run("no face", func(t *testing.T) {
		for name, f := range noFaceFrames() {
			dets, err := det.Detect(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			if len(dets) != 0 {
				t.Errorf("%s: %d faces, want none: %+v", name, len(dets), dets)
			}
		}
	})

	t.Run("largest of two faces", func(t *testing.T) {
		two := raster.New(768, 512)
		paste(two, portrait, 0, 0, 1)
		paste(two, portrait, 512, 128, 2)
		dets, err := det.Detect(ctx, two)
		if err != nil {
			t.Fatal(err)
		}
		if len(dets) != 2 {
			t.Fatalf("%d faces, want 2: %+v", len(dets), dets)
		}
		d, ok, err := det.DetectLargest(ctx, two)
		if err != nil || !ok {
			t.Fatalf("no face: %v", err)
		}
		pointIn(t, "largest face's right eye", d.Keypoints[RightEye], span{199, 207}, span{98, 106})
	})

	t.Run("small face in a 1080p frame", func(t *testing.T) {
		big := raster.New(1920, 1080)
		for i := range big.Pix {
			big.Pix[i] = 90
		}
		const ox, oy = 1200, 400
		paste(big, portrait, ox, oy, 1)
		// The previous frame's face was 12 px to the left and 8 px lower.
		prev := Detection{Box: Box{ox + 173 - 12, oy + 74 + 8, ox + 277 - 12, oy + 178 + 8}}
		for name, find := range map[string]func() (*Detection, error){
			"near": func() (*Detection, error) {
				dets, err := det.DetectNear(ctx, big, prev.Box)
				if len(dets) != 1 {
					t.Fatalf("%d faces near %v, want 1", len(dets), prev.Box)
				}
				return &dets[0], err
			},
			"follow": func() (*Detection, error) { return det.Follow(ctx, big, &prev) },
		} {
			d, err := find()
			if err != nil || d == nil {
				t.Fatalf("%s: no face: %v", name, err)
			}
			pointIn(t, name+" right eye", d.Keypoints[RightEye], span{ox + 199, ox + 207}, span{oy + 98, oy + 106})
			pointIn(t, name+" left eye", d.Keypoints[LeftEye], span{ox + 244, ox + 252}, span{oy + 99, oy + 107})
			pointIn(t, name+" nose tip", d.Keypoints[NoseTip], span{ox + 219, ox + 229}, span{oy + 122, oy + 134})
		}
		// Nothing near an empty corner, and Follow falls back to the whole frame.
		corner := Box{10, 10, 110, 110}
		if dets, err := det.DetectNear(ctx, big, corner); err != nil || len(dets) != 0 {
			t.Errorf("near an empty corner: %+v, %v", dets, err)
		}
		d, err := det.Follow(ctx, big, &Detection{Box: corner})
		if err != nil || d == nil {
			t.Fatalf("follow from the corner: %v, %v", d, err)
		}
		pointIn(t, "fallback box centre", d.Box.Center(), span{ox + 200, ox + 250}, span{oy + 100, oy + 150})
		if d, err := det.Follow(ctx, noFaceFrames()["noise"], nil); err != nil || d != nil {
			t.Errorf("follow on noise: %v, %v; want nil, nil", d, err)
		}
	})

	t.Run("canceled", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := det.Detect(cctx, portrait); !errors.Is(err, context.Canceled) {
			t.Errorf("error %v, want context.Canceled", err)
		}
	})
}
