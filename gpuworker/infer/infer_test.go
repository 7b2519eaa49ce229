package infer_test

import (
	"context"
	"errors"
	"math"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/latentsync/latentsync-service/gpuworker/infer"
	"github.com/latentsync/latentsync-service/gpuworker/infer/infertest"
	"github.com/latentsync/latentsync-service/internal/half"
	"github.com/latentsync/latentsync-service/internal/onnxbuild"
)

// open encodes g and loads it for the length of t.
func open(t *testing.T, g *onnxbuild.Graph) *infer.Session {
	t.Helper()
	data, err := onnxbuild.NewModel(g).Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return infertest.Open(t, data)
}

// addGraph is y = x + [1 2 3] over a symbolic batch.
func addGraph() *onnxbuild.Graph {
	g := onnxbuild.NewGraph("add")
	x := g.Input("x", onnxbuild.Float, "batch", 3)
	b := g.Initializer("b", []int64{3}, []float32{1, 2, 3})
	g.Node("Add", []string{x, b}, []string{"y"})
	g.Output("y", onnxbuild.Float, "batch", 3)
	return g
}

// halfWeights is the float16 initializer the float16 models add.
var halfWeights = []float32{0.2, 1.0 / 3, 0.25, -1000.3}

// halfGraph adds a float16 constant to a float16 input of static shape.
func halfGraph() *onnxbuild.Graph {
	g := onnxbuild.NewGraph("half")
	x := g.Input("x", onnxbuild.Float16, 2, 2)
	w := g.InitializerFloat16("w", []int64{2, 2}, halfWeights)
	g.Node("Add", []string{x, w}, []string{"y"})
	g.Output("y", onnxbuild.Float16, 2, 2)
	return g
}

// halfDynamicGraph adds a float16 row to every row of x, whose row count is
// only known at run time.
func halfDynamicGraph() *onnxbuild.Graph {
	g := onnxbuild.NewGraph("half_dynamic")
	x := g.Input("x", onnxbuild.Float16, "n", 2)
	w := g.InitializerFloat16("w", []int64{2}, []float32{0.5, -0.25})
	g.Node("Add", []string{x, w}, []string{"y"})
	g.Output("y", onnxbuild.Float16, "n", 2)
	return g
}

// roundHalf is v as float16 stores it.
func roundHalf(v float32) float32 { return half.ToFloat32(half.FromFloat32(v)) }

// halfULP is the spacing of float16 values at v.
func halfULP(v float32) float64 {
	_, exp := math.Frexp(float64(v))
	return math.Max(math.Ldexp(1, exp-11), math.Ldexp(1, -24)) // subnormal spacing floor
}

func TestRunFloat32(t *testing.T) {
	s := open(t, addGraph())
	tests := []struct {
		name  string
		shape []int64
		x     []float32
		want  []float32
	}{
		{"batch of two", []int64{2, 3}, []float32{0, 0, 0, 10, 20, 30}, []float32{1, 2, 3, 11, 22, 33}},
		{"batch of one", []int64{1, 3}, []float32{-1, 0.5, 1e6}, []float32{0, 2.5, 1e6 + 3}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := s.Run(context.Background(), map[string]infer.Tensor{"x": {Shape: tc.shape, Float: tc.x}})
			if err != nil {
				t.Fatal(err)
			}
			y := out["y"]
			if !slices.Equal(y.Shape, tc.shape) || !slices.Equal(y.Float, tc.want) {
				t.Errorf("y = %v %v, want %v %v", y.Shape, y.Float, tc.shape, tc.want)
			}
		})
	}
}

// TestRunFloat16 checks that float16 inputs, constants and outputs travel as
// float32 Go slices and come back rounded to float16, not float32.
func TestRunFloat16(t *testing.T) {
	s := open(t, halfGraph())
	x := []float32{0.1, 1.0 / 3, 1000.3, 2.7}
	out, err := s.Run(context.Background(), map[string]infer.Tensor{"x": {Shape: []int64{2, 2}, Float: x}})
	if err != nil {
		t.Fatal(err)
	}
	y := out["y"]
	if !slices.Equal(y.Shape, []int64{2, 2}) || len(y.Float) != 4 {
		t.Fatalf("y = %v %v, want shape [2 2] and 4 values", y.Shape, y.Float)
	}
	for i, got := range y.Float {
		// Both operands are rounded to float16 on the way in; allow the sum's
		// own rounding to land on either neighbour.
		want := roundHalf(roundHalf(x[i]) + roundHalf(halfWeights[i]))
		if math.Abs(float64(got-want)) > halfULP(want) {
			t.Errorf("y[%d] = %g, want %g to float16 precision", i, got, want)
		}
		if roundHalf(got) != got {
			t.Errorf("y[%d] = %g is not a float16 value", i, got)
		}
	}
}

func TestRunFloat16DynamicOutput(t *testing.T) {
	s := open(t, halfDynamicGraph())
	in := map[string]infer.Tensor{"x": {Shape: []int64{3, 2}, Float: []float32{1, 2, 3, 4, 5, 6}}}
	tests := []struct {
		name      string
		outShapes []map[string][]int64
		wantErr   string // "" for success
	}{
		{"no shapes", nil, `float16 output "y" has dynamic shape [-1 2]: pass its shape`},
		{"nil shapes", []map[string][]int64{nil}, `float16 output "y" has dynamic shape`},
		{"another output's shape", []map[string][]int64{{"z": {3, 2}}}, `float16 output "y" has dynamic shape`},
		{"shape given", []map[string][]int64{{"y": {3, 2}}}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := s.Run(context.Background(), in, tc.outShapes...)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to mention %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			y := out["y"]
			want := []float32{1.5, 1.75, 3.5, 3.75, 5.5, 5.75} // exact in float16
			if !slices.Equal(y.Shape, []int64{3, 2}) || !slices.Equal(y.Float, want) {
				t.Errorf("y = %v %v, want [3 2] %v", y.Shape, y.Float, want)
			}
		})
	}
}

func TestRunInt64(t *testing.T) {
	g := onnxbuild.NewGraph("int")
	ids := g.Input("ids", onnxbuild.Int64, "n")
	off := g.InitializerInt64("off", []int64{1}, []int64{1 << 40})
	g.Node("Add", []string{ids, off}, []string{"y"})
	g.Output("y", onnxbuild.Int64, "n")
	s := open(t, g)
	out, err := s.Run(context.Background(), map[string]infer.Tensor{"ids": {Shape: []int64{3}, Int: []int64{-5, 0, 7}}})
	if err != nil {
		t.Fatal(err)
	}
	// Past 2^24, so a detour through float32 would show.
	want := []int64{1<<40 - 5, 1 << 40, 1<<40 + 7}
	if y := out["y"]; !slices.Equal(y.Shape, []int64{3}) || !slices.Equal(y.Int, want) {
		t.Errorf("y = %v %v, want [3] %v", y.Shape, y.Int, want)
	}
}

func TestRunRejects(t *testing.T) {
	s := open(t, addGraph())
	closed := open(t, addGraph())
	if err := closed.Close(); err != nil {
		t.Fatal(err)
	}
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	good := map[string]infer.Tensor{"x": {Shape: []int64{1, 3}, Float: []float32{1, 2, 3}}}
	tests := []struct {
		name    string
		ctx     context.Context
		session *infer.Session
		inputs  map[string]infer.Tensor
		wantIs  error  // checked with errors.Is when set
		want    string // substring of the message otherwise
	}{
		{"missing input", nil, s, map[string]infer.Tensor{"z": good["x"]}, nil, `input "x" not given`},
		{"wrong rank", nil, s, map[string]infer.Tensor{"x": {Shape: []int64{3}, Float: []float32{1, 2, 3}}}, nil, "rank 1, model wants shape [-1 3]"},
		{"wrong fixed dim", nil, s, map[string]infer.Tensor{"x": {Shape: []int64{1, 4}, Float: []float32{1, 2, 3, 4}}}, nil, "shape [1 4], model wants [-1 3]"},
		{"too few values", nil, s, map[string]infer.Tensor{"x": {Shape: []int64{2, 3}, Float: []float32{1, 2, 3, 4, 5}}}, nil, "5 float values for shape [2 3]"},
		{"ints for a float input", nil, s, map[string]infer.Tensor{"x": {Shape: []int64{1, 3}, Int: []int64{1, 2, 3}}}, nil, "0 float values for shape [1 3]"},
		{"closed session", nil, closed, good, nil, "session closed"},
		{"canceled context", canceled, s, good, context.Canceled, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := tc.ctx
			if ctx == nil {
				ctx = context.Background()
			}
			out, err := tc.session.Run(ctx, tc.inputs)
			if out != nil {
				t.Errorf("got outputs %v alongside the error", out)
			}
			switch {
			case err == nil:
				t.Fatal("Run succeeded")
			case tc.wantIs != nil:
				if err != ctx.Err() || !errors.Is(err, tc.wantIs) {
					t.Errorf("err = %v, want ctx.Err() = %v", err, ctx.Err())
				}
			case !strings.Contains(err.Error(), tc.want):
				t.Errorf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
	// A rejected call leaves the session usable.
	if _, err := s.Run(context.Background(), good); err != nil {
		t.Errorf("run after rejected calls: %v", err)
	}
}

func TestSessionInfo(t *testing.T) {
	g := onnxbuild.NewGraph("info")
	g.Node("Identity", []string{g.Input("x", onnxbuild.Float, "batch", 4)}, []string{"y"})
	g.Node("Identity", []string{g.Input("ids", onnxbuild.Int64, 2)}, []string{"ids_out"})
	g.Node("Identity", []string{g.Input("h", onnxbuild.Float16, 1, "n")}, []string{"h_out"})
	g.Output("y", onnxbuild.Float, "batch", 4)
	g.Output("ids_out", onnxbuild.Int64, 2)
	g.Output("h_out", onnxbuild.Float16, 1, "n")
	path := filepath.Join(t.TempDir(), "info.onnx")
	if err := onnxbuild.NewModel(g).WriteFile(path); err != nil {
		t.Fatal(err)
	}
	s := infertest.OpenFile(t, path)
	if s.Path() != path {
		t.Errorf("Path() = %q, want %q", s.Path(), path)
	}
	wantIn := []infer.TensorInfo{
		{Name: "x", Shape: []int64{-1, 4}, DType: infer.Float32},
		{Name: "ids", Shape: []int64{2}, DType: infer.Int64},
		{Name: "h", Shape: []int64{1, -1}, DType: infer.Float16},
	}
	wantOut := []infer.TensorInfo{
		{Name: "y", Shape: []int64{-1, 4}, DType: infer.Float32},
		{Name: "ids_out", Shape: []int64{2}, DType: infer.Int64},
		{Name: "h_out", Shape: []int64{1, -1}, DType: infer.Float16},
	}
	if got := s.Inputs(); !reflect.DeepEqual(got, wantIn) {
		t.Errorf("Inputs() = %+v, want %+v", got, wantIn)
	}
	if got := s.Outputs(); !reflect.DeepEqual(got, wantOut) {
		t.Errorf("Outputs() = %+v, want %+v", got, wantOut)
	}
}

func TestNewRuntimeRejects(t *testing.T) {
	tests := []struct {
		name    string
		shared  bool // open infertest's runtime first
		opts    func() infer.RuntimeOptions
		wantIs  error
		wantMsg string
	}{
		{
			name:   "second runtime",
			shared: true,
			opts:   func() infer.RuntimeOptions { return infer.RuntimeOptions{LibraryPath: infertest.LibraryPath()} },
			wantIs: infer.ErrRuntimeOpen,
		},
		{
			name:    "empty library path",
			opts:    func() infer.RuntimeOptions { return infer.RuntimeOptions{} },
			wantMsg: "no library path",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.shared {
				infertest.Runtime(t)
			}
			rt, err := infer.NewRuntime(tc.opts())
			if err == nil {
				// Do not Close it: that would tear down the shared environment.
				t.Fatal("NewRuntime succeeded")
			}
			if rt != nil {
				t.Errorf("NewRuntime returned a runtime alongside %v", err)
			}
			if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
				t.Errorf("err = %v, want %v", err, tc.wantIs)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("err = %v, want it to mention %q", err, tc.wantMsg)
			}
		})
	}
}

func TestRunInto(t *testing.T) {
	f32 := open(t, addGraph())
	f16 := open(t, halfDynamicGraph())
	in16 := map[string]infer.Tensor{"x": {Shape: []int64{3, 2}, Float: []float32{1, 2, 3, 4, 5, 6}}}
	t.Run("float16 with the dynamic dim taken from the buffer", func(t *testing.T) {
		y := make([]float32, 6)
		if err := f16.RunInto(context.Background(), in16, map[string][]float32{"y": y}); err != nil {
			t.Fatal(err)
		}
		if want := []float32{1.5, 1.75, 3.5, 3.75, 5.5, 5.75}; !slices.Equal(y, want) {
			t.Errorf("y = %v, want %v", y, want)
		}
	})
	t.Run("buffer of the wrong size", func(t *testing.T) {
		err := f16.RunInto(context.Background(), in16, map[string][]float32{"y": make([]float32, 4)})
		if err == nil {
			t.Fatal("no error")
		}
	})
	t.Run("float32", func(t *testing.T) {
		in := map[string]infer.Tensor{"x": {Shape: []int64{2, 3}, Float: []float32{1, 1, 1, 10, 20, 30}}}
		y := []float32{-1, -1, -1, -1, -1, -1}
		if err := f32.RunInto(context.Background(), in, map[string][]float32{"y": y}); err != nil {
			t.Fatal(err)
		}
		if want := []float32{2, 3, 4, 11, 22, 33}; !slices.Equal(y, want) {
			t.Errorf("y = %v, want %v", y, want)
		}
	})
}
