// Package orttest runs ONNX models in ONNX Runtime from tests: it finds and
// initialises the shared library (skipping the test when it is absent) and
// converts tensors between Go slices and ORT values, float16 included.
package orttest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/latentsync/latentsync-service/internal/half"
	"os"
	"path/filepath"
	"sync"
	"testing"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/latentsync/latentsync-service/internal/onnxbuild"
)

// EnvLibrary names the variable that overrides the library path.
const EnvLibrary = "LATENTSYNC_ORT_LIB"

// defaultLibrary is where the Makefile installs ONNX Runtime, relative to the
// module root.
const defaultLibrary = ".deps/onnxruntime-1.24.1/libonnxruntime.so.1.24.1"

// LibraryPath returns $LATENTSYNC_ORT_LIB if set, else the Makefile's install
// path if it exists, else "".
func LibraryPath() string {
	if p := os.Getenv(EnvLibrary); p != "" {
		abs, err := filepath.Abs(p)
		if err != nil {
			return p
		}
		return abs
	}
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			p := filepath.Join(dir, defaultLibrary)
			if _, err := os.Stat(p); err == nil {
				return p
			}
			return ""
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// The ORT environment is process-wide by design of the C API, so it is set up
// once per test binary and never torn down.
var (
	initOnce sync.Once
	initErr  error
)

// Init makes ONNX Runtime usable, skipping t when no library is configured or
// installed, failing it when initialisation fails.
func Init(t testing.TB) {
	t.Helper()
	lib := LibraryPath()
	if lib == "" {
		t.Skipf("ONNX Runtime not available: set %s or run make deps", EnvLibrary)
	}
	initOnce.Do(func() {
		ort.SetSharedLibraryPath(lib)
		initErr = ort.InitializeEnvironment(ort.WithLogLevelError())
	})
	if initErr != nil {
		t.Fatalf("initialise ONNX Runtime from %s: %v", lib, initErr)
	}
}

// Tensor is a Go-side tensor: Float holds float32 and float16 elements, Int
// holds int64 ones.
type Tensor struct {
	Shape []int64
	Type  onnxbuild.DataType
	Float []float32
	Int   []int64
}

// F32 is a float32 tensor.
func F32(shape []int64, data []float32) Tensor {
	return Tensor{Shape: shape, Type: onnxbuild.Float, Float: data}
}

// F16 is a float16 tensor given as float32 values.
func F16(shape []int64, data []float32) Tensor {
	return Tensor{Shape: shape, Type: onnxbuild.Float16, Float: data}
}

// I64 is an int64 tensor.
func I64(shape []int64, data []int64) Tensor {
	return Tensor{Shape: shape, Type: onnxbuild.Int64, Int: data}
}

func (t Tensor) value() (ort.Value, error) {
	shape := ort.NewShape(t.Shape...)
	switch t.Type {
	case onnxbuild.Float:
		return ort.NewTensor(shape, t.Float)
	case onnxbuild.Int64:
		return ort.NewTensor(shape, t.Int)
	case onnxbuild.Float16:
		raw := make([]byte, 0, 2*len(t.Float))
		for _, v := range t.Float {
			raw = binary.LittleEndian.AppendUint16(raw, half.FromFloat32(v))
		}
		return ort.NewCustomDataTensor(shape, raw, ort.TensorElementDataTypeFloat16)
	}
	return nil, fmt.Errorf("unsupported tensor type %v", t.Type)
}

func fromValue(v ort.Value) (Tensor, error) {
	shape := []int64(v.GetShape())
	switch v := v.(type) {
	case *ort.Tensor[float32]:
		return F32(shape, append([]float32(nil), v.GetData()...)), nil
	case *ort.Tensor[int64]:
		return I64(shape, append([]int64(nil), v.GetData()...)), nil
	case *ort.CustomDataTensor:
		raw := v.GetData()
		n := ort.Shape(shape).FlattenedSize()
		if int64(len(raw)) != 2*n {
			return Tensor{}, fmt.Errorf("float16 output has %d bytes for %d elements", len(raw), n)
		}
		out := make([]float32, n)
		for i := range out {
			out[i] = half.ToFloat32(binary.LittleEndian.Uint16(raw[2*i:]))
		}
		return F16(shape, out), nil
	}
	return Tensor{}, fmt.Errorf("unsupported output value %T", v)
}

// Session is a loaded model.
type Session struct {
	s       *ort.DynamicAdvancedSession
	inputs  []ort.InputOutputInfo
	outputs []ort.InputOutputInfo
}

// Open loads an encoded model; the session is destroyed when t ends.
func Open(t testing.TB, model []byte) *Session {
	t.Helper()
	Init(t)
	in, out, err := ort.GetInputOutputInfoWithONNXData(model)
	if err != nil {
		t.Fatalf("read model I/O: %v", err)
	}
	s, err := ort.NewDynamicAdvancedSessionWithONNXData(model, names(in), names(out), nil)
	if err != nil {
		t.Fatalf("create session: %v", err)
	}
	t.Cleanup(func() { _ = s.Destroy() })
	return &Session{s: s, inputs: in, outputs: out}
}

// OpenFile loads a model file.
func OpenFile(t testing.TB, path string) *Session {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read model: %v", err)
	}
	return Open(t, b)
}

func names(infos []ort.InputOutputInfo) []string {
	out := make([]string, len(infos))
	for i, info := range infos {
		out[i] = info.Name
	}
	return out
}

// Inputs describes the model's inputs as ONNX Runtime reports them.
func (s *Session) Inputs() []ort.InputOutputInfo { return s.inputs }

// Outputs describes the model's outputs as ONNX Runtime reports them.
func (s *Session) Outputs() []ort.InputOutputInfo { return s.outputs }

// Run feeds every input by name and returns every output by name.
//
// Float16 outputs must have static shapes: they are preallocated here because
// onnxruntime_go v1.27.0 copies only one byte per element when it allocates
// an output of a type without a Go equivalent.
func (s *Session) Run(inputs map[string]Tensor) (out map[string]Tensor, err error) {
	var values []ort.Value
	defer func() {
		for _, v := range values {
			if v != nil {
				err = errors.Join(err, v.Destroy())
			}
		}
	}()
	ins := make([]ort.Value, len(s.inputs))
	for i, info := range s.inputs {
		t, ok := inputs[info.Name]
		if !ok {
			return nil, fmt.Errorf("missing input %q", info.Name)
		}
		v, err := t.value()
		if err != nil {
			return nil, fmt.Errorf("input %q: %w", info.Name, err)
		}
		ins[i] = v
		values = append(values, v)
	}
	outs := make([]ort.Value, len(s.outputs))
	for i, info := range s.outputs {
		if info.DataType != ort.TensorElementDataTypeFloat16 {
			continue // let ORT allocate it
		}
		n := info.Dimensions.FlattenedSize()
		if n <= 0 {
			return nil, fmt.Errorf("float16 output %q has dynamic shape %v", info.Name, info.Dimensions)
		}
		v, err := ort.NewCustomDataTensor(info.Dimensions.Clone(), make([]byte, 2*n), ort.TensorElementDataTypeFloat16)
		if err != nil {
			return nil, fmt.Errorf("allocate output %q: %w", info.Name, err)
		}
		outs[i] = v
		values = append(values, v)
	}
	err = s.s.Run(ins, outs)
	for i := range outs { // Run fills the nil entries; they need freeing too
		if outs[i] != nil && !contains(values, outs[i]) {
			values = append(values, outs[i])
		}
	}
	if err != nil {
		return nil, fmt.Errorf("run: %w", err)
	}
	out = make(map[string]Tensor, len(outs))
	for i, info := range s.outputs {
		t, err := fromValue(outs[i])
		if err != nil {
			return nil, fmt.Errorf("output %q: %w", info.Name, err)
		}
		out[info.Name] = t
	}
	return out, nil
}

func contains(vs []ort.Value, v ort.Value) bool {
	for _, w := range vs {
		if w == v {
			return true
		}
	}
	return false
}
