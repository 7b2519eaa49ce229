// Package raster holds the packed 8-bit RGB image that flows between ffmpeg's
// rawvideo pipes, the face detector, the warps and the encoder.
package raster

import "fmt"

// RGB is a packed rgb24 image, row-major, 3 bytes per pixel, no padding: the
// exact layout of ffmpeg's `-f rawvideo -pix_fmt rgb24`.
type RGB struct {
	W, H int
	Pix  []byte
}

// New allocates a black image.
func New(w, h int) *RGB { return &RGB{W: w, H: h, Pix: make([]byte, 3*w*h)} }

// Clone returns a deep copy.
func (m *RGB) Clone() *RGB {
	c := &RGB{W: m.W, H: m.H, Pix: make([]byte, len(m.Pix))}
	copy(c.Pix, m.Pix)
	return c
}

// Offset is the index of pixel (x, y)'s red byte.
func (m *RGB) Offset(x, y int) int { return 3 * (y*m.W + x) }

// Validate reports a buffer that does not match its size.
func (m *RGB) Validate() error {
	if m.W <= 0 || m.H <= 0 || len(m.Pix) != 3*m.W*m.H {
		return fmt.Errorf("raster: %dx%d image with %d bytes", m.W, m.H, len(m.Pix))
	}
	return nil
}
