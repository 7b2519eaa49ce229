package face

import (
	"context"
	"math"
	"strings"
	"testing"

	"github.com/latentsync/latentsync-service/gpuworker/infer"
	"github.com/latentsync/latentsync-service/internal/raster"
)

// blazeIO is the interface of the real BlazeFace exports.
func blazeIO(size int64) ([]infer.TensorInfo, []infer.TensorInfo) {
	return []infer.TensorInfo{{Name: "input:0", Shape: []int64{1, size, size, 3}, DType: infer.Float32}},
		[]infer.TensorInfo{
			{Name: "Identity:0", Shape: []int64{1, 512, 1}, DType: infer.Float32},
			{Name: "Identity_1:0", Shape: []int64{1, 384, 1}, DType: infer.Float32},
			{Name: "Identity_2:0", Shape: []int64{1, 512, 16}, DType: infer.Float32},
			{Name: "Identity_3:0", Shape: []int64{1, 384, 16}, DType: infer.Float32},
		}
}

func TestNewDetectorChecksInterface(t *testing.T) {
	in, out := blazeIO(256)
	tests := []struct {
		name    string
		in, out []infer.TensorInfo
		opts    []Option
		wantErr string
	}{
		{"back model", in, out, nil, ""},
		{"outputs in any order", in, []infer.TensorInfo{out[3], out[0], out[2], out[1]}, nil, ""},
		{"two inputs", append(in, in[0]), out, nil, "inputs"},
		{"NCHW input", []infer.TensorInfo{{Name: "x", Shape: []int64{1, 3, 256, 256}, DType: infer.Float32}}, out, nil, "want float32 [1,S,S,3]"},
		{"float16 input", []infer.TensorInfo{{Name: "x", Shape: []int64{1, 256, 256, 3}, DType: infer.Float16}}, out, nil, "want float32"},
		{"missing regressors", in, out[:3], nil, "partner"},
		{"wrong anchor count", in, []infer.TensorInfo{
			{Name: "s", Shape: []int64{1, 100, 1}, DType: infer.Float32},
			{Name: "r", Shape: []int64{1, 100, 16}, DType: infer.Float32}}, nil, "896"},
		{"bad threshold", in, out, []Option{WithMinScore(1.5)}, "options"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := newDetector(tc.in, tc.out, nil, tc.opts...)
			if tc.wantErr == "" && err != nil {
				t.Fatal(err)
			}
			if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("error %v, want one mentioning %q", err, tc.wantErr)
			}
		})
	}
}

// fakeBlaze answers like BlazeFace with one confident face on anchor index
// hit (all keypoints on the anchor centre, box 0.25 of the input wide) and
// records the input it was given.
type fakeBlaze struct {
	hit   int
	input []float32
}

func (f *fakeBlaze) run(_ context.Context, in map[string]infer.Tensor) (map[string]infer.Tensor, error) {
	f.input = in["input:0"].Float
	s0, s1 := make([]float32, 512), make([]float32, 384)
	r0, r1 := make([]float32, 512*16), make([]float32, 384*16)
	for i := range s0 {
		s0[i] = -10
	}
	for i := range s1 {
		s1[i] = -10
	}
	scores, regs, i := s0, r0, f.hit
	if i >= 512 {
		scores, regs, i = s1, r1, i-512
	}
	scores[i] = 5
	regs[16*i+2], regs[16*i+3] = 64, 64 // of a 256 input
	return map[string]infer.Tensor{
		"Identity:0": {Float: s0}, "Identity_1:0": {Float: s1},
		"Identity_2:0": {Float: r0}, "Identity_3:0": {Float: r1},
	}, nil
}

func TestDetectMapsLetterboxToImage(t *testing.T) {
	in, out := blazeIO(256)
	fake := &fakeBlaze{hit: 512 + 6*(8*2+3)} // 8x8 grid cell (3, 2): centre (7/16, 5/16)
	d, err := newDetector(in, out, fake.run, WithNearScale(3))
	if err != nil {
		t.Fatal(err)
	}
	// A 640x320 frame letterboxes into a 640x640 square starting at y = -160.
	img := raster.New(640, 320)
	for i := range img.Pix {
		img.Pix[i] = 255
	}
	dets, err := d.Detect(context.Background(), img)
	if err != nil {
		t.Fatal(err)
	}
	if len(dets) != 1 {
		t.Fatalf("%d faces, want 1", len(dets))
	}
	want := Point{7.0 / 16 * 640, 5.0/16*640 - 160}
	if c := dets[0].Box.Center(); !near(c.X, want.X, 1e-9) || !near(c.Y, want.Y, 1e-9) || !near(dets[0].Box.W(), 160, 1e-9) {
		t.Errorf("box %v, want centre %v and side 160", dets[0].Box, want)
	}
	if kp := dets[0].Keypoints[NoseTip]; !near(kp.X, want.X, 1e-9) || !near(kp.Y, want.Y, 1e-9) {
		t.Errorf("nose %v, want %v", kp, want)
	}
	// The frame occupies input rows 64..191; above and below is black padding.
	for _, tc := range []struct {
		row  int
		want float32
	}{{0, -1}, {63, -1}, {64, 1}, {191, 1}, {192, -1}, {255, -1}} {
		if v := fake.input[3*(tc.row*256+100)]; v != tc.want {
			t.Errorf("input row %d = %v, want %v", tc.row, v, tc.want)
		}
	}

	// DetectNear: a 100 px box centred at (300, 150), near scale 3 -> view
	// [150, 450) x [0, 300); the anchor centre maps into that view.
	near3, err := d.DetectNear(context.Background(), img, Box{250, 100, 350, 200})
	if err != nil {
		t.Fatal(err)
	}
	wantNear := Point{150 + 7.0/16*300, 0 + 5.0/16*300}
	if len(near3) != 1 || !near(near3[0].Box.Center().X, wantNear.X, 1e-9) || !near(near3[0].Box.Center().Y, wantNear.Y, 1e-9) {
		t.Errorf("near detections %+v, want one centred at %v", near3, wantNear)
	}
	if _, err := d.DetectNear(context.Background(), img, Box{}); err == nil {
		t.Error("empty previous box: no error")
	}

	// A face centred in the letterbox padding is dropped.
	fake.hit = 512 + 6*(8*0+3) // centre y = 1/16 of 640 - 160 < 0
	if dets, err := d.Detect(context.Background(), img); err != nil || len(dets) != 0 {
		t.Errorf("face in padding: %v, %v; want none", dets, err)
	}
}

func TestSampleSquare(t *testing.T) {
	// 4x2 image with distinct red values; green = 255 - red; blue constant.
	img := raster.New(4, 2)
	for i := 0; i < 8; i++ {
		img.Pix[3*i], img.Pix[3*i+1], img.Pix[3*i+2] = byte(30*i), byte(255-30*i), 51
	}
	red := func(v float32) float64 { return (float64(v) + 1) * 127.5 }
	t.Run("one to one with padding", func(t *testing.T) {
		dst := make([]float32, 4*4*3)
		sampleSquare(img, 0, -1, 4, 4, dst)
		for y := 0; y < 4; y++ {
			for x := 0; x < 4; x++ {
				want := -1.0 // padding rows
				if y == 1 || y == 2 {
					want = float64(30*((y-1)*4+x))/127.5 - 1
				}
				if got := float64(dst[3*(y*4+x)]); !near(got, want, 1e-6) {
					t.Errorf("(%d,%d) = %v, want %v", x, y, got, want)
				}
			}
		}
	})
	t.Run("halving averages 2x2 blocks", func(t *testing.T) {
		dst := make([]float32, 2*2*3)
		sampleSquare(img, 0, 0, 4, 2, dst) // view rows 2-3 are below the frame
		for _, tc := range []struct {
			i    int
			want float64
		}{
			{3 * 0, float64(0+30+120+150) / 4},
			{3 * 1, float64(60+90+180+210) / 4},
			{3*1 + 2, 51},
			{3 * 2, 0}, // padding
		} {
			if got := red(dst[tc.i]); !near(got, tc.want, 1e-4) {
				t.Errorf("value %d = %v, want %v", tc.i, got, tc.want)
			}
		}
	})
	t.Run("big reductions keep flat areas flat", func(t *testing.T) {
		flat := raster.New(1000, 1000)
		for i := range flat.Pix {
			flat.Pix[i] = 200
		}
		dst := make([]float32, 16*16*3)
		sampleSquare(flat, 0, 0, 1000, 16, dst)
		for i, v := range dst {
			if !near(red(v), 200, 1e-3) {
				t.Fatalf("value %d = %v, want 200", i, red(v))
			}
		}
	})
	t.Run("no aliasing of a fine stripe pattern", func(t *testing.T) {
		// 1-px black/white columns shrunk 8x must come out mid grey, not
		// black or white as point sampling would give.
		stripes := raster.New(512, 512)
		for y := 0; y < 512; y++ {
			for x := 0; x < 512; x += 2 {
				o := stripes.Offset(x, y)
				stripes.Pix[o], stripes.Pix[o+1], stripes.Pix[o+2] = 255, 255, 255
			}
		}
		dst := make([]float32, 64*64*3)
		sampleSquare(stripes, 0, 0, 512, 64, dst)
		for i, v := range dst {
			if math.Abs(red(v)-127.5) > 1 {
				t.Fatalf("value %d = %v, want about 127.5", i, red(v))
			}
		}
	})
}

// Model input preparation for a whole 1080p frame (16 bilinear taps per input
// pixel); DetectNear's views usually need one.
func BenchmarkSampleSquare1080p(b *testing.B) {
	img := raster.New(1920, 1080)
	dst := make([]float32, 256*256*3)
	for b.Loop() {
		sampleSquare(img, 0, -420, 1920, 256, dst)
	}
}
