// Package infer runs ONNX models through ONNX Runtime (onnxruntime_go). It hides
// the library's typed tensors behind one Go-side Tensor so that callers work in
// float32 whether a model stores float32 or float16.
package infer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/latentsync/latentsync-service/internal/half"
)

// DType is a tensor element type as written in a model bundle manifest.
type DType string

const (
	Float32 DType = "float32"
	Float16 DType = "float16"
	Int64   DType = "int64"
)

// TensorInfo describes one model input or output; -1 marks a dynamic dimension.
type TensorInfo struct {
	Name  string
	Shape []int64
	DType DType
}

// Tensor is the Go-side value of an input or output: Float holds float32 and
// float16 data, Int holds int64 data.
type Tensor struct {
	Shape []int64
	Float []float32
	Int   []int64
}

// Elements is the product of the shape.
func (t Tensor) Elements() int64 { return elements(t.Shape) }

func elements(shape []int64) int64 {
	n := int64(1)
	for _, d := range shape {
		n *= d
	}
	return n
}

// RuntimeOptions configures the ONNX Runtime environment and its sessions.
type RuntimeOptions struct {
	LibraryPath    string // absolute path of libonnxruntime.so
	UseCUDA        bool   // ask for the CUDA execution provider, fall back to CPU
	IntraOpThreads int    // 0: ONNX Runtime's default
	Logger         *slog.Logger
}

// Runtime owns the ONNX Runtime environment. The C library keeps one
// environment per process, so only one Runtime may be open at a time.
type Runtime struct {
	opts RuntimeOptions
	log  *slog.Logger
}

// ErrRuntimeOpen is returned when a second Runtime is opened in one process.
var ErrRuntimeOpen = errors.New("an ONNX Runtime environment is already open in this process")

// environment serialises the process-wide library state that onnxruntime_go
// keeps; it is the one piece of shared state the C library forces on us.
var environment sync.Mutex

// NewRuntime loads the shared library and initialises the environment.
func NewRuntime(opts RuntimeOptions) (*Runtime, error) {
	if opts.LibraryPath == "" {
		return nil, errors.New("onnx runtime: no library path given")
	}
	lib, err := filepath.Abs(opts.LibraryPath)
	if err != nil {
		return nil, fmt.Errorf("onnx runtime library %s: %w", opts.LibraryPath, err)
	}
	environment.Lock()
	defer environment.Unlock()
	if ort.IsInitialized() {
		return nil, ErrRuntimeOpen
	}
	ort.SetSharedLibraryPath(lib)
	if err := ort.InitializeEnvironment(ort.WithLogLevelError()); err != nil {
		return nil, fmt.Errorf("onnx runtime library %s: %w", lib, err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	opts.LibraryPath = lib
	return &Runtime{opts: opts, log: log}, nil
}

// Close releases the environment; sessions must be closed first.
func (r *Runtime) Close() error {
	environment.Lock()
	defer environment.Unlock()
	if !ort.IsInitialized() {
		return nil
	}
	if err := ort.DestroyEnvironment(); err != nil {
		return fmt.Errorf("close onnx runtime: %w", err)
	}
	return nil
}

// Session is one loaded model. Run is safe for one caller at a time.
type Session struct {
	path    string
	inputs  []TensorInfo
	outputs []TensorInfo
	sess    *ort.DynamicAdvancedSession
	// Provider is the execution provider the session runs on ("CUDA" or "CPU").
	Provider string
	mu       sync.Mutex
}

// Open loads the model at path and reads its inputs and outputs from the file.
func (r *Runtime) Open(path string) (*Session, error) {
	inInfo, outInfo, err := ort.GetInputOutputInfo(path)
	if err != nil {
		return nil, fmt.Errorf("read model %s: %w", path, err)
	}
	s := &Session{path: path}
	if s.inputs, err = convertInfo(inInfo); err != nil {
		return nil, fmt.Errorf("model %s: %w", path, err)
	}
	if s.outputs, err = convertInfo(outInfo); err != nil {
		return nil, fmt.Errorf("model %s: %w", path, err)
	}
	opts, provider, err := r.sessionOptions()
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", path, err)
	}
	defer opts.Destroy()
	sess, err := ort.NewDynamicAdvancedSession(path, names(s.inputs), names(s.outputs), opts)
	if err != nil {
		return nil, fmt.Errorf("open model %s: %w", path, err)
	}
	s.sess, s.Provider = sess, provider
	return s, nil
}

func (r *Runtime) sessionOptions() (*ort.SessionOptions, string, error) {
	opts, err := ort.NewSessionOptions()
	if err != nil {
		return nil, "", fmt.Errorf("session options: %w", err)
	}
	if r.opts.IntraOpThreads > 0 {
		if err := opts.SetIntraOpNumThreads(r.opts.IntraOpThreads); err != nil {
			opts.Destroy()
			return nil, "", fmt.Errorf("intra-op threads: %w", err)
		}
	}
	if !r.opts.UseCUDA || !r.cudaShipped() {
		return opts, "CPU", nil
	}
	cuda, err := ort.NewCUDAProviderOptions()
	if err == nil {
		defer cuda.Destroy()
		err = opts.AppendExecutionProviderCUDA(cuda)
	}
	if err != nil {
		// A CPU-only library or a machine without a GPU: keep serving, slower.
		r.log.Warn("CUDA execution provider unavailable, using CPU", "error", err.Error())
		return opts, "CPU", nil
	}
	return opts, "CUDA", nil
}

// cudaShipped reports whether the CUDA provider library sits beside the core
// library, where ONNX Runtime looks for it; a CPU-only build has none, and
// asking for CUDA there only fills stderr with loader errors.
func (r *Runtime) cudaShipped() bool {
	_, err := os.Stat(filepath.Join(filepath.Dir(r.opts.LibraryPath), "libonnxruntime_providers_cuda.so"))
	return err == nil
}

// Path is the model file the session was loaded from.
func (s *Session) Path() string { return s.path }

// Inputs lists the model's inputs in declaration order.
func (s *Session) Inputs() []TensorInfo { return s.inputs }

// Outputs lists the model's outputs in declaration order.
func (s *Session) Outputs() []TensorInfo { return s.outputs }

// Close releases the session.
func (s *Session) Close() error {
	if s.sess == nil {
		return nil
	}
	err := s.sess.Destroy()
	s.sess = nil
	if err != nil {
		return fmt.Errorf("close model %s: %w", s.path, err)
	}
	return nil
}

// Run feeds every input by name and returns every output by name. Float16
// outputs need a fully known shape: pass it in outShapes (other outputs may
// be omitted there and are sized by ONNX Runtime).
func (s *Session) Run(ctx context.Context, inputs map[string]Tensor, outShapes ...map[string][]int64) (map[string]Tensor, error) {
	var shapes map[string][]int64
	if len(outShapes) > 0 {
		shapes = outShapes[0]
	}
	result := make(map[string]Tensor, len(s.outputs))
	err := s.run(ctx, inputs, shapes, func(info TensorInfo, v ort.Value) error {
		t, err := fromValue(v)
		result[info.Name] = t
		return err
	})
	if err != nil {
		return nil, err
	}
	return result, nil
}

// RunInto is Run for callers that reuse buffers: every float output is
// copied into outputs[name], whose length must match the output exactly, so
// a loop of inferences allocates nothing on the Go heap per call. Outputs not
// named in outputs are dropped.
func (s *Session) RunInto(ctx context.Context, inputs map[string]Tensor, outputs map[string][]float32) error {
	shapes := map[string][]int64{}
	for _, info := range s.outputs {
		if dst, ok := outputs[info.Name]; ok && info.DType == Float16 {
			shapes[info.Name] = fitShape(info.Shape, len(dst))
		}
	}
	return s.run(ctx, inputs, shapes, func(info TensorInfo, v ort.Value) error {
		dst, ok := outputs[info.Name]
		if !ok {
			return nil
		}
		switch x := v.(type) {
		case *ort.Tensor[float32]:
			data := x.GetData()
			if len(data) != len(dst) {
				return fmt.Errorf("%d values for a buffer of %d", len(data), len(dst))
			}
			copy(dst, data)
		case *ort.CustomDataTensor:
			raw := x.GetData()
			if len(raw) != 2*len(dst) {
				return fmt.Errorf("%d float16 values for a buffer of %d", len(raw)/2, len(dst))
			}
			for i := range dst {
				dst[i] = half.ToFloat32(uint16(raw[2*i]) | uint16(raw[2*i+1])<<8)
			}
		default:
			return fmt.Errorf("output of type %T into a float buffer", v)
		}
		return nil
	})
}

// fitShape resolves a single dynamic dimension of shape from the element
// count of a caller's buffer; shapes it cannot resolve are returned as they are.
func fitShape(shape []int64, n int) []int64 {
	out := append([]int64(nil), shape...)
	dyn, known := -1, int64(1)
	for i, d := range out {
		if d < 0 {
			if dyn >= 0 {
				return out
			}
			dyn = i
			continue
		}
		known *= d
	}
	if dyn >= 0 && known > 0 && int64(n)%known == 0 {
		out[dyn] = int64(n) / known
	}
	return out
}

func (s *Session) run(ctx context.Context, inputs map[string]Tensor, outShapes map[string][]int64, deliver func(TensorInfo, ort.Value) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sess == nil {
		return fmt.Errorf("model %s: session closed", s.path)
	}
	var values []ort.Value
	defer func() {
		for _, v := range values {
			v.Destroy()
		}
	}()
	in := make([]ort.Value, len(s.inputs))
	for i, info := range s.inputs {
		t, ok := inputs[info.Name]
		if !ok {
			return fmt.Errorf("model %s: input %q not given", s.path, info.Name)
		}
		v, err := toValue(info, t)
		if err != nil {
			return fmt.Errorf("model %s: input %q: %w", s.path, info.Name, err)
		}
		in[i] = v
		values = append(values, v)
	}
	out := make([]ort.Value, len(s.outputs))
	for i, info := range s.outputs {
		if info.DType != Float16 {
			continue // ONNX Runtime allocates it
		}
		shape := info.Shape
		if outShapes[info.Name] != nil {
			shape = outShapes[info.Name]
		}
		if slices.ContainsFunc(shape, func(d int64) bool { return d < 0 }) {
			return fmt.Errorf("model %s: float16 output %q has dynamic shape %v: pass its shape", s.path, info.Name, shape)
		}
		v, err := ort.NewCustomDataTensor(ort.NewShape(shape...), make([]byte, 2*elements(shape)), ort.TensorElementDataTypeFloat16)
		if err != nil {
			return fmt.Errorf("model %s: output %q: %w", s.path, info.Name, err)
		}
		out[i] = v
		values = append(values, v)
	}
	if err := s.sess.Run(in, out); err != nil {
		for i, v := range out {
			if v != nil && s.outputs[i].DType != Float16 {
				values = append(values, v)
			}
		}
		return fmt.Errorf("run model %s: %w", s.path, err)
	}
	for i, info := range s.outputs {
		if info.DType != Float16 {
			values = append(values, out[i]) // allocated by ONNX Runtime
		}
	}
	for i, info := range s.outputs {
		if err := deliver(info, out[i]); err != nil {
			return fmt.Errorf("model %s: output %q: %w", s.path, info.Name, err)
		}
	}
	return nil
}

func toValue(info TensorInfo, t Tensor) (ort.Value, error) {
	if len(t.Shape) != len(info.Shape) {
		return nil, fmt.Errorf("rank %d, model wants shape %v", len(t.Shape), info.Shape)
	}
	for i, d := range info.Shape {
		if d >= 0 && t.Shape[i] != d {
			return nil, fmt.Errorf("shape %v, model wants %v", t.Shape, info.Shape)
		}
	}
	n := elements(t.Shape)
	shape := ort.NewShape(t.Shape...)
	switch info.DType {
	case Float32:
		if int64(len(t.Float)) != n {
			return nil, fmt.Errorf("%d float values for shape %v", len(t.Float), t.Shape)
		}
		return ort.NewTensor(shape, t.Float)
	case Float16:
		if int64(len(t.Float)) != n {
			return nil, fmt.Errorf("%d float values for shape %v", len(t.Float), t.Shape)
		}
		buf := make([]byte, 2*n)
		for i, f := range t.Float {
			h := half.FromFloat32(f)
			buf[2*i], buf[2*i+1] = byte(h), byte(h>>8)
		}
		return ort.NewCustomDataTensor(shape, buf, ort.TensorElementDataTypeFloat16)
	case Int64:
		if int64(len(t.Int)) != n {
			return nil, fmt.Errorf("%d int values for shape %v", len(t.Int), t.Shape)
		}
		return ort.NewTensor(shape, t.Int)
	}
	return nil, fmt.Errorf("unsupported dtype %q", info.DType)
}

func fromValue(v ort.Value) (Tensor, error) {
	shape := []int64(v.GetShape())
	switch x := v.(type) {
	case *ort.Tensor[float32]:
		return Tensor{Shape: shape, Float: append([]float32(nil), x.GetData()...)}, nil
	case *ort.Tensor[int64]:
		return Tensor{Shape: shape, Int: append([]int64(nil), x.GetData()...)}, nil
	case *ort.CustomDataTensor:
		raw := x.GetData()
		if int64(len(raw)) != 2*elements(shape) {
			return Tensor{}, fmt.Errorf("float16 output has %d bytes for shape %v", len(raw), shape)
		}
		f := make([]float32, len(raw)/2)
		for i := range f {
			f[i] = half.ToFloat32(uint16(raw[2*i]) | uint16(raw[2*i+1])<<8)
		}
		return Tensor{Shape: shape, Float: f}, nil
	}
	return Tensor{}, fmt.Errorf("unsupported output value %T", v)
}

func convertInfo(in []ort.InputOutputInfo) ([]TensorInfo, error) {
	out := make([]TensorInfo, len(in))
	for i, io := range in {
		if io.OrtValueType != ort.ONNXTypeTensor {
			return nil, fmt.Errorf("%s is not a tensor", io.Name)
		}
		var dt DType
		switch io.DataType {
		case ort.TensorElementDataTypeFloat:
			dt = Float32
		case ort.TensorElementDataTypeFloat16:
			dt = Float16
		case ort.TensorElementDataTypeInt64:
			dt = Int64
		default:
			return nil, fmt.Errorf("%s has unsupported element type %s", io.Name, io.DataType)
		}
		out[i] = TensorInfo{Name: io.Name, Shape: append([]int64(nil), io.Dimensions...), DType: dt}
	}
	return out, nil
}

func names(infos []TensorInfo) []string {
	n := make([]string, len(infos))
	for i, info := range infos {
		n[i] = info.Name
	}
	return n
}
