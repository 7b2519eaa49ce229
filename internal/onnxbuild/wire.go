package onnxbuild

import (
	"encoding/binary"
	"math"
)

// Protobuf wire types used by the ONNX messages we write.
const (
	wireVarint  = 0
	wireFixed32 = 5
	wireBytes   = 2
)

// encoder appends protobuf wire-format fields to a byte slice. Only the few
// encodings ONNX needs are implemented; field order is the caller's order, so
// output is deterministic.
type encoder struct {
	b []byte
}

func (e *encoder) tag(field, wire int) {
	e.b = binary.AppendUvarint(e.b, uint64(field)<<3|uint64(wire))
}

// uvarint writes an unsigned varint field.
func (e *encoder) uvarint(field int, v uint64) {
	e.tag(field, wireVarint)
	e.b = binary.AppendUvarint(e.b, v)
}

// int64 writes an int64/int32/enum field: negative values are sign-extended
// to 64 bits (ten bytes), as protobuf requires for non-zigzag ints.
func (e *encoder) int64(field int, v int64) {
	e.uvarint(field, uint64(v))
}

func (e *encoder) float(field int, v float32) {
	e.tag(field, wireFixed32)
	e.b = binary.LittleEndian.AppendUint32(e.b, math.Float32bits(v))
}

func (e *encoder) bytes(field int, v []byte) {
	e.tag(field, wireBytes)
	e.b = binary.AppendUvarint(e.b, uint64(len(v)))
	e.b = append(e.b, v...)
}

func (e *encoder) string(field int, v string) {
	e.tag(field, wireBytes)
	e.b = binary.AppendUvarint(e.b, uint64(len(v)))
	e.b = append(e.b, v...)
}

// message writes a length-delimited sub-message built by fn. The child is
// encoded separately because its length prefix must come first.
func (e *encoder) message(field int, fn func(*encoder)) {
	var child encoder
	fn(&child)
	e.bytes(field, child.b)
}

// packedInt64 writes a packed repeated int64 field (parsers accept packed
// encoding for every repeated scalar, proto2 included).
func (e *encoder) packedInt64(field int, vs []int64) {
	if len(vs) == 0 {
		return
	}
	var p []byte
	for _, v := range vs {
		p = binary.AppendUvarint(p, uint64(v))
	}
	e.bytes(field, p)
}

func (e *encoder) packedFloat(field int, vs []float32) {
	if len(vs) == 0 {
		return
	}
	p := make([]byte, 0, 4*len(vs))
	for _, v := range vs {
		p = binary.LittleEndian.AppendUint32(p, math.Float32bits(v))
	}
	e.bytes(field, p)
}
