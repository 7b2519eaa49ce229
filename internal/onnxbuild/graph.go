// Package onnxbuild writes ONNX models from Go without protoc or a protobuf
// library: it hand-encodes the few ONNX messages a small inference graph needs
// (see onnx.proto). It exists so that test networks can be generated
// reproducibly inside this repository.
//
//	g := onnxbuild.NewGraph("add")
//	x := g.Input("x", onnxbuild.Float, "batch", 3)
//	b := g.Initializer("b", []int64{3}, []float32{1, 2, 3})
//	g.Node("Add", []string{x, b}, []string{"y"})
//	g.Output("y", onnxbuild.Float, "batch", 3)
//	data, err := onnxbuild.NewModel(g).Bytes()
package onnxbuild

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"

	"github.com/latentsync/latentsync-service/internal/half"
)

// DataType is an ONNX TensorProto.DataType.
type DataType int32

// The element types supported here.
const (
	Float   DataType = 1
	Int64   DataType = 7
	Float16 DataType = 10
)

func (d DataType) String() string {
	switch d {
	case Float:
		return "float32"
	case Int64:
		return "int64"
	case Float16:
		return "float16"
	}
	return fmt.Sprintf("DataType(%d)", int32(d))
}

// size is the element size in bytes, 0 for unsupported types.
func (d DataType) size() int {
	switch d {
	case Float:
		return 4
	case Int64:
		return 8
	case Float16:
		return 2
	}
	return 0
}

// Tensor is a constant tensor (an initializer or a tensor attribute). Raw holds
// the elements little-endian, as TensorProto.raw_data.
type Tensor struct {
	Name string
	Dims []int64
	Type DataType
	Raw  []byte
}

// FloatTensor makes a float32 tensor.
func FloatTensor(name string, dims []int64, data []float32) Tensor {
	raw := make([]byte, 0, 4*len(data))
	for _, v := range data {
		raw = binary.LittleEndian.AppendUint32(raw, math.Float32bits(v))
	}
	return Tensor{Name: name, Dims: dims, Type: Float, Raw: raw}
}

// Float16Tensor makes a float16 tensor from float32 values (rounded to
// nearest even).
func Float16Tensor(name string, dims []int64, data []float32) Tensor {
	raw := make([]byte, 0, 2*len(data))
	for _, v := range data {
		raw = binary.LittleEndian.AppendUint16(raw, half.FromFloat32(v))
	}
	return Tensor{Name: name, Dims: dims, Type: Float16, Raw: raw}
}

// Int64Tensor makes an int64 tensor.
func Int64Tensor(name string, dims []int64, data []int64) Tensor {
	raw := make([]byte, 0, 8*len(data))
	for _, v := range data {
		raw = binary.LittleEndian.AppendUint64(raw, uint64(v))
	}
	return Tensor{Name: name, Dims: dims, Type: Int64, Raw: raw}
}

func (t Tensor) validate() error {
	if t.Type.size() == 0 {
		return fmt.Errorf("tensor %q: unsupported data type %v", t.Name, t.Type)
	}
	n := int64(1)
	for _, d := range t.Dims {
		if d < 0 {
			return fmt.Errorf("tensor %q: negative dimension in %v", t.Name, t.Dims)
		}
		n *= d
	}
	if want := n * int64(t.Type.size()); int64(len(t.Raw)) != want {
		return fmt.Errorf("tensor %q: %d bytes of data for dims %v of %v, want %d",
			t.Name, len(t.Raw), t.Dims, t.Type, want)
	}
	return nil
}

func (t Tensor) encode(e *encoder) {
	e.packedInt64(1, t.Dims)
	e.int64(2, int64(t.Type))
	if t.Name != "" {
		e.string(8, t.Name)
	}
	e.bytes(9, t.Raw)
}

// AttributeProto.AttributeType values.
const (
	attrFloat  = 1
	attrInt    = 2
	attrString = 3
	attrTensor = 4
	attrFloats = 6
	attrInts   = 7
)

// Attribute is a node attribute; make one with FloatAttr, IntAttr,
// StringAttr, TensorAttr, Floats or Ints.
type Attribute struct {
	name   string
	kind   int
	f      float32
	i      int64
	s      string
	t      Tensor
	floats []float32
	ints   []int64
}

// FloatAttr is a float attribute.
func FloatAttr(name string, v float32) Attribute {
	return Attribute{name: name, kind: attrFloat, f: v}
}

// IntAttr is an int attribute.
func IntAttr(name string, v int64) Attribute {
	return Attribute{name: name, kind: attrInt, i: v}
}

// StringAttr is a string attribute.
func StringAttr(name, v string) Attribute {
	return Attribute{name: name, kind: attrString, s: v}
}

// TensorAttr is a tensor attribute (e.g. Constant's value).
func TensorAttr(name string, t Tensor) Attribute {
	return Attribute{name: name, kind: attrTensor, t: t}
}

// Floats is a list-of-floats attribute.
func Floats(name string, vs ...float32) Attribute {
	return Attribute{name: name, kind: attrFloats, floats: vs}
}

// Ints is a list-of-ints attribute.
func Ints(name string, vs ...int64) Attribute {
	return Attribute{name: name, kind: attrInts, ints: vs}
}

func (a Attribute) validate() error {
	if a.name == "" {
		return errors.New("attribute without a name")
	}
	if a.kind == 0 {
		return fmt.Errorf("attribute %q: zero value, use a constructor", a.name)
	}
	if a.kind == attrTensor {
		return a.t.validate()
	}
	return nil
}

func (a Attribute) encode(e *encoder) {
	e.string(1, a.name)
	// The value field is written even when zero: proto2 presence matters to
	// some readers, and a union member must be set to be seen.
	switch a.kind {
	case attrFloat:
		e.float(2, a.f)
	case attrInt:
		e.int64(3, a.i)
	case attrString:
		e.string(4, a.s)
	case attrTensor:
		e.message(5, a.t.encode)
	case attrFloats:
		e.packedFloat(7, a.floats)
	case attrInts:
		e.packedInt64(8, a.ints)
	}
	e.int64(20, int64(a.kind))
}

// dim is one dimension of a graph input or output: a size or a symbolic name.
type dim struct {
	value int64
	param string
}

type valueInfo struct {
	name string
	typ  DataType
	dims []dim
}

func (v valueInfo) encode(e *encoder) {
	e.string(1, v.name)
	e.message(2, func(tp *encoder) { // TypeProto
		tp.message(1, func(tt *encoder) { // TypeProto.Tensor
			tt.int64(1, int64(v.typ))
			tt.message(2, func(sh *encoder) { // TensorShapeProto
				for _, d := range v.dims {
					sh.message(1, func(de *encoder) { // Dimension
						if d.param != "" {
							de.string(2, d.param)
						} else {
							de.int64(1, d.value)
						}
					})
				}
			})
		})
	})
}

type node struct {
	op      string
	name    string
	inputs  []string
	outputs []string
	attrs   []Attribute
}

func (n node) encode(e *encoder) {
	for _, in := range n.inputs {
		e.string(1, in)
	}
	for _, out := range n.outputs {
		e.string(2, out)
	}
	e.string(3, n.name)
	e.string(4, n.op)
	for _, a := range n.attrs {
		e.message(5, a.encode)
	}
}

// Graph collects a graph's inputs, initializers, nodes and outputs in the
// order they are added. Mistakes (bad dimension types, ...) are remembered
// and reported by Model.Bytes, so building code stays linear.
type Graph struct {
	name    string
	inputs  []valueInfo
	outputs []valueInfo
	inits   []Tensor
	nodes   []node
	errs    []error
	seq     int
}

// NewGraph starts an empty graph.
func NewGraph(name string) *Graph {
	return &Graph{name: name}
}

func (g *Graph) fail(err error) {
	g.errs = append(g.errs, err)
}

// next returns a fresh name with the given prefix.
func (g *Graph) next(prefix string) string {
	g.seq++
	return fmt.Sprintf("%s_%d", prefix, g.seq)
}

func (g *Graph) valueInfo(kind, name string, t DataType, dims []any) valueInfo {
	v := valueInfo{name: name, typ: t}
	for _, d := range dims {
		switch d := d.(type) {
		case int:
			v.dims = append(v.dims, dim{value: int64(d)})
		case int64:
			v.dims = append(v.dims, dim{value: d})
		case int32:
			v.dims = append(v.dims, dim{value: int64(d)})
		case string:
			if d == "" {
				g.fail(fmt.Errorf("%s %q: empty symbolic dimension", kind, name))
			}
			v.dims = append(v.dims, dim{param: d})
		default:
			g.fail(fmt.Errorf("%s %q: dimension %v has type %T, want int or string", kind, name, d, d))
		}
	}
	if t.size() == 0 {
		g.fail(fmt.Errorf("%s %q: unsupported data type %v", kind, name, t))
	}
	return v
}

// Input declares a graph input. Each dim is an int (fixed size) or a string
// (symbolic, e.g. "batch"). It returns name for chaining.
func (g *Graph) Input(name string, t DataType, dims ...any) string {
	g.inputs = append(g.inputs, g.valueInfo("input", name, t, dims))
	return name
}

// Output declares a graph output, which some node must produce.
func (g *Graph) Output(name string, t DataType, dims ...any) string {
	g.outputs = append(g.outputs, g.valueInfo("output", name, t, dims))
	return name
}

// AddInitializer adds a constant tensor; an empty name gets a fresh one.
// It returns the tensor's name.
func (g *Graph) AddInitializer(t Tensor) string {
	if t.Name == "" {
		t.Name = g.next("const")
	}
	g.inits = append(g.inits, t)
	return t.Name
}

// Initializer adds a float32 constant; an empty name gets a fresh one.
func (g *Graph) Initializer(name string, dims []int64, data []float32) string {
	return g.AddInitializer(FloatTensor(name, dims, data))
}

// InitializerFloat16 adds a float16 constant from float32 values.
func (g *Graph) InitializerFloat16(name string, dims []int64, data []float32) string {
	return g.AddInitializer(Float16Tensor(name, dims, data))
}

// InitializerInt64 adds an int64 constant.
func (g *Graph) InitializerInt64(name string, dims []int64, data []int64) string {
	return g.AddInitializer(Int64Tensor(name, dims, data))
}

// Node appends a node. Nodes must be added in topological order.
func (g *Graph) Node(op string, inputs, outputs []string, attrs ...Attribute) {
	g.nodes = append(g.nodes, node{
		op:      op,
		name:    g.next(op),
		inputs:  inputs,
		outputs: outputs,
		attrs:   attrs,
	})
}

// Op appends a single-output node and returns its output's fresh name.
func (g *Graph) Op(op string, inputs []string, attrs ...Attribute) string {
	out := g.next(op)
	g.nodes = append(g.nodes, node{
		op:      op,
		name:    out,
		inputs:  inputs,
		outputs: []string{out},
		attrs:   attrs,
	})
	return out
}

// validate checks what ONNX Runtime would otherwise reject with a vaguer
// message: unique value names, topological order, produced outputs.
func (g *Graph) validate() error {
	errs := append([]error(nil), g.errs...)
	if g.name == "" {
		errs = append(errs, errors.New("graph has no name"))
	}
	defined := map[string]bool{}
	define := func(kind, name string) {
		if name == "" {
			errs = append(errs, fmt.Errorf("%s with an empty name", kind))
			return
		}
		if defined[name] {
			errs = append(errs, fmt.Errorf("%s %q: name already defined", kind, name))
		}
		defined[name] = true
	}
	for _, in := range g.inputs {
		define("input", in.name)
	}
	for _, t := range g.inits {
		define("initializer", t.Name)
		if err := t.validate(); err != nil {
			errs = append(errs, err)
		}
	}
	for _, n := range g.nodes {
		if n.op == "" {
			errs = append(errs, fmt.Errorf("node %q: no op type", n.name))
		}
		for _, in := range n.inputs {
			if in != "" && !defined[in] { // "" marks an omitted optional input
				errs = append(errs, fmt.Errorf("node %q (%s): input %q is not defined before it", n.name, n.op, in))
			}
		}
		for _, a := range n.attrs {
			if err := a.validate(); err != nil {
				errs = append(errs, fmt.Errorf("node %q (%s): %w", n.name, n.op, err))
			}
		}
		for _, out := range n.outputs {
			if out != "" {
				define("node output", out)
			}
		}
	}
	if len(g.outputs) == 0 {
		errs = append(errs, errors.New("graph has no outputs"))
	}
	for _, out := range g.outputs {
		if !defined[out.name] {
			errs = append(errs, fmt.Errorf("output %q is never produced", out.name))
		}
	}
	return errors.Join(errs...)
}

func (g *Graph) encode(e *encoder) {
	for _, n := range g.nodes {
		e.message(1, n.encode)
	}
	e.string(2, g.name)
	for _, t := range g.inits {
		e.message(5, t.encode)
	}
	for _, v := range g.inputs {
		e.message(11, v.encode)
	}
	for _, v := range g.outputs {
		e.message(12, v.encode)
	}
}

// Defaults of NewModel: what ONNX Runtime 1.2x loads and what the stand-in
// networks target.
const (
	DefaultIRVersion = 8
	DefaultOpset     = 17
	DefaultProducer  = "latentsync-onnxbuild"
)

// Model wraps a graph with the model-level fields.
type Model struct {
	Graph        *Graph
	IRVersion    int64
	Opset        int64 // of the default ("ai.onnx") domain
	ProducerName string
}

// NewModel wraps g with the default IR version, opset and producer.
func NewModel(g *Graph) Model {
	return Model{Graph: g, IRVersion: DefaultIRVersion, Opset: DefaultOpset, ProducerName: DefaultProducer}
}

// Bytes encodes the model. The output depends only on what was added, in
// order, so the same building code always yields the same bytes.
func (m Model) Bytes() ([]byte, error) {
	if m.Graph == nil {
		return nil, errors.New("onnxbuild: model has no graph")
	}
	if err := m.Graph.validate(); err != nil {
		return nil, fmt.Errorf("onnxbuild: graph %q: %w", m.Graph.name, err)
	}
	if m.IRVersion <= 0 || m.Opset <= 0 {
		return nil, fmt.Errorf("onnxbuild: IR version %d and opset %d must be positive", m.IRVersion, m.Opset)
	}
	var e encoder
	e.int64(1, m.IRVersion)
	if m.ProducerName != "" {
		e.string(2, m.ProducerName)
	}
	e.message(7, m.Graph.encode)
	e.message(8, func(op *encoder) {
		op.string(1, "")
		op.int64(2, m.Opset)
	})
	return e.b, nil
}

// WriteFile encodes the model and writes it to path.
func (m Model) WriteFile(path string) error {
	b, err := m.Bytes()
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("onnxbuild: write model: %w", err)
	}
	return nil
}
