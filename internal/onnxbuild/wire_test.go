package onnxbuild

import (
	"bytes"
	"testing"
)

func TestEncoding(t *testing.T) {
	tests := []struct {
		name string
		fn   func(*encoder)
		want []byte
	}{
		{"small varint", func(e *encoder) { e.int64(2, 1) }, []byte{0x10, 0x01}},
		{"multi-byte varint", func(e *encoder) { e.int64(1, 300) }, []byte{0x08, 0xac, 0x02}},
		{"negative int is ten bytes", func(e *encoder) { e.int64(3, -1) },
			[]byte{0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}},
		{"two-byte tag", func(e *encoder) { e.int64(20, 2) }, []byte{0xa0, 0x01, 0x02}},
		{"float", func(e *encoder) { e.float(2, 1) }, []byte{0x15, 0x00, 0x00, 0x80, 0x3f}},
		{"string", func(e *encoder) { e.string(4, "Add") }, []byte{0x22, 0x03, 'A', 'd', 'd'}},
		{"empty string kept", func(e *encoder) { e.string(1, "") }, []byte{0x0a, 0x00}},
		{"packed ints", func(e *encoder) { e.packedInt64(1, []int64{1, 300}) }, []byte{0x0a, 0x03, 0x01, 0xac, 0x02}},
		{"packed empty omitted", func(e *encoder) { e.packedInt64(1, nil) }, nil},
		{"packed floats", func(e *encoder) { e.packedFloat(7, []float32{1, -2}) },
			[]byte{0x3a, 0x08, 0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xc0}},
		{"nested message", func(e *encoder) { e.message(8, func(c *encoder) { c.int64(2, 17) }) },
			[]byte{0x42, 0x02, 0x10, 0x11}},
		{"tensor", FloatTensor("w", []int64{2}, []float32{1, -2}).encode, []byte{
			0x0a, 0x01, 0x02, // dims
			0x10, 0x01, // data_type FLOAT
			0x42, 0x01, 'w', // name
			0x4a, 0x08, 0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xc0, // raw_data
		}},
		{"int attribute", IntAttr("axis", -1).encode, []byte{
			0x0a, 0x04, 'a', 'x', 'i', 's',
			0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
			0xa0, 0x01, 0x02,
		}},
		{"zero float attribute still written", FloatAttr("a", 0).encode, []byte{
			0x0a, 0x01, 'a', 0x15, 0, 0, 0, 0, 0xa0, 0x01, 0x01,
		}},
		{"value info with symbolic and fixed dims", valueInfo{name: "x", typ: Float, dims: []dim{{param: "n"}, {value: 3}}}.encode, []byte{
			0x0a, 0x01, 'x',
			0x12, 0x0f, // type
			0x0a, 0x0d, // tensor_type
			0x08, 0x01, // elem_type
			0x12, 0x09, // shape
			0x0a, 0x03, 0x12, 0x01, 'n', // dim_param
			0x0a, 0x02, 0x08, 0x03, // dim_value
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var e encoder
			tc.fn(&e)
			if !bytes.Equal(e.b, tc.want) {
				t.Errorf("got % x\nwant % x", e.b, tc.want)
			}
		})
	}
}
