package onnxbuild_test

import (
	"bytes"
	"context"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/latentsync/latentsync-service/gpuworker/infer"
	"github.com/latentsync/latentsync-service/gpuworker/infer/infertest"
	"github.com/latentsync/latentsync-service/internal/half"
	"github.com/latentsync/latentsync-service/internal/onnxbuild"
)

func addModel() onnxbuild.Model {
	g := onnxbuild.NewGraph("add")
	x := g.Input("x", onnxbuild.Float, "batch", 3)
	b := g.Initializer("b", []int64{3}, []float32{1, 2, 3})
	g.Node("Add", []string{x, b}, []string{"y"})
	g.Output("y", onnxbuild.Float, "batch", 3)
	return onnxbuild.NewModel(g)
}

func convModel() onnxbuild.Model {
	g := onnxbuild.NewGraph("conv")
	x := g.Input("x", onnxbuild.Float, 1, 1, 4, 4)
	w := g.Initializer("w", []int64{2, 1, 2, 2}, []float32{1, 1, 1, 1, 1, 0, 0, -1})
	b := g.Initializer("b", []int64{2}, []float32{0.5, 0})
	g.Node("Conv", []string{x, w, b}, []string{"y"},
		onnxbuild.Ints("kernel_shape", 2, 2), onnxbuild.Ints("strides", 2, 2), onnxbuild.Ints("pads", 0, 0, 0, 0))
	g.Output("y", onnxbuild.Float, 1, 2, 2, 2)
	return onnxbuild.NewModel(g)
}

func matMulModel() onnxbuild.Model {
	g := onnxbuild.NewGraph("matmul")
	x := g.Input("x", onnxbuild.Float, "n", 3)
	w := g.Initializer("", []int64{3, 2}, []float32{1, 2, 3, 4, 5, 6})
	y := g.Op("MatMul", []string{x, w})
	g.Node("Tanh", []string{y}, []string{"y"})
	g.Output("y", onnxbuild.Float, "n", 2)
	return onnxbuild.NewModel(g)
}

func float16Model() onnxbuild.Model {
	g := onnxbuild.NewGraph("half")
	x := g.Input("x", onnxbuild.Float16, 2, 2)
	w := g.InitializerFloat16("w", []int64{2, 2}, []float32{0.25, -1, 1000, 0.1})
	g.Node("Add", []string{x, w}, []string{"y"})
	g.Node("Cast", []string{"y"}, []string{"y32"}, onnxbuild.IntAttr("to", int64(onnxbuild.Float)))
	g.Output("y", onnxbuild.Float16, 2, 2)
	g.Output("y32", onnxbuild.Float, 2, 2)
	return onnxbuild.NewModel(g)
}

// attrModel exercises int64 inputs, string/float/tensor attributes and an
// omitted optional input.
func attrModel() onnxbuild.Model {
	g := onnxbuild.NewGraph("attrs")
	x := g.Input("x", onnxbuild.Float, 1, 1, 2, 2)
	idx := g.Input("idx", onnxbuild.Int64, 2)
	pads := g.InitializerInt64("pads", []int64{8}, []int64{0, 0, 1, 1, 0, 0, 1, 1})
	p := g.Op("Pad", []string{x, pads}, onnxbuild.StringAttr("mode", "edge")) // [1,1,4,4]
	l := g.Op("LeakyRelu", []string{p}, onnxbuild.FloatAttr("alpha", 0.5))
	flat := g.Op("Reshape", []string{l, g.InitializerInt64("", []int64{1}, []int64{-1})})
	c := g.Op("Constant", nil, onnxbuild.TensorAttr("value", onnxbuild.FloatTensor("", []int64{2}, []float32{10, 20})))
	gathered := g.Op("Gather", []string{flat, idx}, onnxbuild.IntAttr("axis", 0))
	g.Node("Add", []string{gathered, c}, []string{"y"})
	g.Node("Clip", []string{flat, "", g.Initializer("", nil, []float32{0})}, []string{"clipped"}) // no min, max 0
	g.Output("y", onnxbuild.Float, 2)
	g.Output("clipped", onnxbuild.Float, 16)
	return onnxbuild.NewModel(g)
}

func TestModelsRunInONNXRuntime(t *testing.T) {
	tests := []struct {
		name   string
		model  onnxbuild.Model
		inputs map[string]infer.Tensor
		want   map[string][]float32
	}{
		{
			name:   "add with symbolic batch",
			model:  addModel(),
			inputs: map[string]infer.Tensor{"x": {Shape: []int64{2, 3}, Float: []float32{0, 0, 0, 10, 20, 30}}},
			want:   map[string][]float32{"y": {1, 2, 3, 11, 22, 33}},
		},
		{
			name:  "conv with attributes",
			model: convModel(),
			inputs: map[string]infer.Tensor{"x": {Shape: []int64{1, 1, 4, 4}, Float: []float32{
				1, 2, 3, 4,
				5, 6, 7, 8,
				9, 10, 11, 12,
				13, 14, 15, 16,
			}}},
			// Channel 0 sums each 2x2 block + 0.5; channel 1 is top-left minus bottom-right.
			want: map[string][]float32{"y": {14.5, 22.5, 46.5, 54.5, -5, -5, -5, -5}},
		},
		{
			name:   "matmul",
			model:  matMulModel(),
			inputs: map[string]infer.Tensor{"x": {Shape: []int64{2, 3}, Float: []float32{0.1, 0, 0, 0, 0, -0.1}}},
			want: map[string][]float32{"y": {
				float32(math.Tanh(0.1)), float32(math.Tanh(0.2)),
				float32(math.Tanh(-0.5)), float32(math.Tanh(-0.6)),
			}},
		},
		{
			name:   "float16",
			model:  float16Model(),
			inputs: map[string]infer.Tensor{"x": {Shape: []int64{2, 2}, Float: []float32{1.5, 2, 24, 0}}},
			// fp16 spacing at 1024 is 1, so 1024 is exact; 0.1 becomes its nearest half.
			want: map[string][]float32{
				"y":   {1.75, 1, 1024, half.ToFloat32(half.FromFloat32(0.1))},
				"y32": {1.75, 1, 1024, half.ToFloat32(half.FromFloat32(0.1))},
			},
		},
		{
			name:  "int64 inputs and attribute kinds",
			model: attrModel(),
			inputs: map[string]infer.Tensor{
				"x":   {Shape: []int64{1, 1, 2, 2}, Float: []float32{1, -2, 3, -4}},
				"idx": {Shape: []int64{2}, Int: []int64{0, 15}},
			},
			// Edge padding replicates borders, LeakyRelu halves negatives:
			// index 0 is x[0]=1, index 15 is x[3]=-4 -> -2.
			want: map[string][]float32{
				"y":       {11, 18},
				"clipped": {0, 0, -1, -1, 0, 0, -1, -1, 0, 0, -2, -2, 0, 0, -2, -2},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data, err := tc.model.Bytes()
			if err != nil {
				t.Fatal(err)
			}
			s := infertest.Open(t, data)
			out, err := s.Run(context.Background(), tc.inputs)
			if err != nil {
				t.Fatal(err)
			}
			for name, want := range tc.want {
				got := out[name].Float
				if len(got) != len(want) {
					t.Fatalf("%s: got %d values %v, want %v", name, len(got), got, want)
				}
				for i := range want {
					if math.Abs(float64(got[i]-want[i])) > 1e-5 {
						t.Errorf("%s[%d] = %g, want %g", name, i, got[i], want[i])
					}
				}
			}
		})
	}
}

func TestInputOutputInfo(t *testing.T) {
	data, err := float16Model().Bytes()
	if err != nil {
		t.Fatal(err)
	}
	s := infertest.Open(t, data)
	if in := s.Inputs(); len(in) != 1 || in[0].Name != "x" || in[0].DType != infer.Float16 {
		t.Errorf("inputs = %v", in)
	}
	if out := s.Outputs(); len(out) != 2 || out[1].Name != "y32" || out[1].DType != infer.Float32 {
		t.Errorf("outputs = %v", out)
	}
	data, err = addModel().Bytes()
	if err != nil {
		t.Fatal(err)
	}
	s = infertest.Open(t, data)
	if got := s.Inputs()[0].Shape; !slices.Equal(got, []int64{-1, 3}) {
		t.Errorf("symbolic input dims = %v, want [-1 3]", got)
	}
}

func TestBytesDeterministic(t *testing.T) {
	a, err := attrModel().Bytes()
	if err != nil {
		t.Fatal(err)
	}
	m := attrModel()
	b, err := m.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	c, err := m.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) || !bytes.Equal(b, c) {
		t.Error("same graph encoded to different bytes")
	}
}

func TestBytesRejectsBadGraphs(t *testing.T) {
	tests := []struct {
		name  string
		build func(g *onnxbuild.Graph)
		want  string
	}{
		{"bad dim type", func(g *onnxbuild.Graph) {
			g.Input("x", onnxbuild.Float, 1.5)
			g.Node("Identity", []string{"x"}, []string{"y"})
			g.Output("y", onnxbuild.Float, 1)
		}, "dimension 1.5 has type float64"},
		{"data size mismatch", func(g *onnxbuild.Graph) {
			w := g.Initializer("w", []int64{2, 2}, []float32{1, 2, 3})
			g.Node("Identity", []string{w}, []string{"y"})
			g.Output("y", onnxbuild.Float, 2, 2)
		}, "12 bytes of data for dims [2 2]"},
		{"undefined input", func(g *onnxbuild.Graph) {
			g.Node("Identity", []string{"nope"}, []string{"y"})
			g.Output("y", onnxbuild.Float, 1)
		}, `input "nope" is not defined`},
		{"duplicate name", func(g *onnxbuild.Graph) {
			x := g.Input("x", onnxbuild.Float, 1)
			g.Node("Identity", []string{x}, []string{"x"})
			g.Output("x", onnxbuild.Float, 1)
		}, `"x": name already defined`},
		{"output never produced", func(g *onnxbuild.Graph) {
			g.Input("x", onnxbuild.Float, 1)
			g.Output("y", onnxbuild.Float, 1)
		}, `output "y" is never produced`},
		{"no outputs", func(g *onnxbuild.Graph) {
			g.Input("x", onnxbuild.Float, 1)
		}, "no outputs"},
		{"unsupported type", func(g *onnxbuild.Graph) {
			x := g.Input("x", onnxbuild.DataType(3), 1)
			g.Node("Identity", []string{x}, []string{"y"})
			g.Output("y", onnxbuild.Float, 1)
		}, "unsupported data type"},
		{"attribute zero value", func(g *onnxbuild.Graph) {
			x := g.Input("x", onnxbuild.Float, 1)
			g.Node("Identity", []string{x}, []string{"y"}, onnxbuild.Attribute{})
			g.Output("y", onnxbuild.Float, 1)
		}, "attribute without a name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := onnxbuild.NewGraph("bad")
			tc.build(g)
			_, err := onnxbuild.NewModel(g).Bytes()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}
