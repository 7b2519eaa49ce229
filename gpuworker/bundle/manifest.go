package bundle

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"math"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/latentsync/latentsync-service/gpuworker/ddim"
)

// FormatVersion is the manifest format this package reads and writes.
const FormatVersion = 1

// Manifest is a bundle's manifest.json: what the pipeline needs to know about
// the networks and how to drive them.
type Manifest struct {
	FormatVersion int              `json:"format_version"`
	Name          string           `json:"name"`
	Version       string           `json:"version"`
	Description   string           `json:"description"`
	Parameters    Parameters       `json:"parameters"`
	Models        map[string]Model `json:"models"` // by role, e.g. "unet"; JSON keys come out sorted
}

// Parameters are the pipeline constants the networks were trained with.
type Parameters struct {
	Resolution       int          `json:"resolution"`      // face crop side in pixels
	LatentChannels   int          `json:"latent_channels"` // VAE latent channels; latent side = resolution/8
	VAEScalingFactor float64      `json:"vae_scaling_factor"`
	VAEShiftFactor   float64      `json:"vae_shift_factor"`
	FramesPerChunk   int          `json:"frames_per_chunk"` // video frames per UNet call
	FPS              int          `json:"fps"`
	Audio            AudioParams  `json:"audio"`
	Mask             MaskRect     `json:"mask"`
	FaceTemplate     FaceTemplate `json:"face_template"`
	Scheduler        Scheduler    `json:"scheduler"`
	Defaults         Defaults     `json:"defaults"`
}

// AudioParams describe the audio encoder's input (Whisper log-mel) and how its
// per-step features become the per-frame context of the UNet.
type AudioParams struct {
	SampleRate     int `json:"sample_rate"`
	NMels          int `json:"n_mels"`
	NFFT           int `json:"n_fft"`
	HopLength      int `json:"hop_length"`
	WindowSeconds  int `json:"window_seconds"`   // encoder input window
	StepsPerSecond int `json:"steps_per_second"` // encoder output steps
	Layers         int `json:"layers"`           // feature vectors per step
	Dim            int `json:"dim"`              // width of one feature vector
	ContextBefore  int `json:"context_before"`   // steps before a frame's first step
	ContextAfter   int `json:"context_after"`    // steps from it on
}

// MaskRect is the lower-face region the model regenerates, in pixels of the
// Resolution crop. All four bounds are inclusive, as LatentSync states them
// ("rows 95-242, columns 9-247"); Bounds gives the half-open rectangle.
type MaskRect struct {
	Top    int `json:"top"`
	Bottom int `json:"bottom"`
	Left   int `json:"left"`
	Right  int `json:"right"`
}

// Bounds is the mask as a half-open image.Rectangle.
func (m MaskRect) Bounds() image.Rectangle {
	return image.Rect(m.Left, m.Top, m.Right+1, m.Bottom+1)
}

// FaceTemplate places the stable face points in the crop as [x, y]
// fractions of Resolution. RightEye is the subject's right eye, which appears
// on the image's left.
type FaceTemplate struct {
	RightEye [2]float64 `json:"right_eye"`
	LeftEye  [2]float64 `json:"left_eye"`
	Nose     [2]float64 `json:"nose"`
}

// Scheduler is the sampler: its type ("ddim", the only one supported) and
// the diffusers-style configuration, which ddim.New takes as is.
type Scheduler struct {
	Type string `json:"type"`
	ddim.Config
}

// Defaults apply when a job does not choose.
type Defaults struct {
	InferenceSteps int     `json:"inference_steps"`
	GuidanceScale  float64 `json:"guidance_scale"`
}

// Model describes one network file and the tensors it must declare.
type Model struct {
	File      string       `json:"file"` // a plain name inside the bundle directory
	SHA256    string       `json:"sha256"`
	Precision string       `json:"precision"` // "float32" or "float16": the weights
	Inputs    []TensorSpec `json:"inputs"`
	Outputs   []TensorSpec `json:"outputs"`
}

// TensorSpec is a model input or output.
type TensorSpec struct {
	Name  string `json:"name"`
	Shape []Dim  `json:"shape"`
	DType string `json:"dtype"` // "float32", "float16" or "int64"
}

// Dim is one tensor dimension: a fixed size, or a symbolic name such as
// "batch" that the caller chooses at run time. In JSON it is a number or a
// string.
type Dim struct {
	size  int64
	param string
}

// FixedDim is a dimension of size n.
func FixedDim(n int64) Dim { return Dim{size: n} }

// SymbolicDim is a dimension named name, sized at run time.
func SymbolicDim(name string) Dim { return Dim{param: name} }

// Size returns the fixed size and true, or 0 and false for a symbolic dim.
func (d Dim) Size() (int64, bool) { return d.size, d.param == "" }

// Param returns the symbolic name, "" for a fixed dim.
func (d Dim) Param() string { return d.param }

func (d Dim) String() string {
	if d.param != "" {
		return d.param
	}
	return strconv.FormatInt(d.size, 10)
}

// MarshalJSON writes a number or a string.
func (d Dim) MarshalJSON() ([]byte, error) {
	if d.param != "" {
		return json.Marshal(d.param)
	}
	return json.Marshal(d.size)
}

// UnmarshalJSON reads an integer or a non-empty string.
func (d *Dim) UnmarshalJSON(b []byte) error {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return fmt.Errorf("dimension: %w", err)
	}
	switch v := v.(type) {
	case string:
		if v == "" {
			return errors.New("dimension: empty symbolic name")
		}
		*d = SymbolicDim(v)
	case float64:
		n, err := strconv.ParseInt(string(b), 10, 64)
		if err != nil {
			return fmt.Errorf("dimension %s is not an integer", b)
		}
		*d = FixedDim(n)
	default:
		return fmt.Errorf("dimension %s: want an integer or a string", b)
	}
	return nil
}

// Validate reports every missing field and out-of-range number, so a broken
// manifest is rejected at load time rather than mid-job.
func (m *Manifest) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if m.FormatVersion != FormatVersion {
		bad("format_version %d: want %d", m.FormatVersion, FormatVersion)
	}
	if m.Name == "" {
		bad("name is missing")
	}
	if m.Version == "" {
		bad("version is missing")
	}
	errs = append(errs, m.Parameters.validate()...)
	if len(m.Models) == 0 {
		bad("models: none listed")
	}
	names := make([]string, 0, len(m.Models))
	for name := range m.Models {
		names = append(names, name)
	}
	slices.Sort(names) // stable error order
	for _, name := range names {
		for _, err := range m.Models[name].validate() {
			bad("models.%s: %w", name, err)
		}
	}
	return errors.Join(errs...)
}

func (p Parameters) validate() []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf("parameters."+format, args...)) }
	positive := func(name string, v int) {
		if v <= 0 {
			bad("%s %d: must be positive", name, v)
		}
	}
	if p.Resolution <= 0 || p.Resolution%8 != 0 {
		bad("resolution %d: must be a positive multiple of 8 (the VAE downsamples 8x)", p.Resolution)
	}
	positive("latent_channels", p.LatentChannels)
	if !(p.VAEScalingFactor > 0) || math.IsInf(p.VAEScalingFactor, 0) {
		bad("vae_scaling_factor %v: must be positive", p.VAEScalingFactor)
	}
	if math.IsNaN(p.VAEShiftFactor) || math.IsInf(p.VAEShiftFactor, 0) {
		bad("vae_shift_factor %v: must be finite", p.VAEShiftFactor)
	}
	positive("frames_per_chunk", p.FramesPerChunk)
	positive("fps", p.FPS)

	a := p.Audio
	positive("audio.sample_rate", a.SampleRate)
	positive("audio.n_mels", a.NMels)
	positive("audio.n_fft", a.NFFT)
	positive("audio.hop_length", a.HopLength)
	positive("audio.window_seconds", a.WindowSeconds)
	positive("audio.steps_per_second", a.StepsPerSecond)
	positive("audio.layers", a.Layers)
	positive("audio.dim", a.Dim)
	if a.ContextBefore < 0 || a.ContextAfter < 0 || a.ContextBefore+a.ContextAfter == 0 {
		bad("audio context %d before, %d after: must be non-negative and not both zero", a.ContextBefore, a.ContextAfter)
	}

	r := p.Mask
	if r.Top < 0 || r.Left < 0 || r.Top > r.Bottom || r.Left > r.Right || r.Bottom >= p.Resolution || r.Right >= p.Resolution {
		bad("mask %+v: must lie inside the %d crop with top <= bottom, left <= right", r, p.Resolution)
	}

	for _, pt := range []struct {
		name string
		xy   [2]float64
	}{{"right_eye", p.FaceTemplate.RightEye}, {"left_eye", p.FaceTemplate.LeftEye}, {"nose", p.FaceTemplate.Nose}} {
		for _, v := range pt.xy {
			if !(v >= 0 && v <= 1) {
				bad("face_template.%s %v: coordinates must be fractions in [0, 1]", pt.name, pt.xy)
				break
			}
		}
	}
	if p.FaceTemplate.RightEye == p.FaceTemplate.LeftEye {
		bad("face_template: the eyes coincide")
	}

	if p.Scheduler.Type != "ddim" {
		bad("scheduler.type %q: only \"ddim\" is supported", p.Scheduler.Type)
	}
	if !(p.Scheduler.BetaStart > 0 && p.Scheduler.BetaStart < p.Scheduler.BetaEnd && p.Scheduler.BetaEnd < 1) {
		bad("scheduler betas %v..%v: want 0 < beta_start < beta_end < 1", p.Scheduler.BetaStart, p.Scheduler.BetaEnd)
	}
	if p.Scheduler.StepsOffset < 0 {
		bad("scheduler.steps_offset %d: must not be negative", p.Scheduler.StepsOffset)
	}
	// ddim.New checks the rest of the schedule against the default step count.
	if _, err := ddim.New(p.Scheduler.Config, p.Defaults.InferenceSteps); err != nil {
		bad("scheduler with defaults.inference_steps %d: %w", p.Defaults.InferenceSteps, err)
	}
	if !(p.Defaults.GuidanceScale > 0) || math.IsInf(p.Defaults.GuidanceScale, 0) {
		bad("defaults.guidance_scale %v: must be positive", p.Defaults.GuidanceScale)
	}
	return errs
}

func (m Model) validate() []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	// The loader joins File to the cache directory: it must not escape it.
	if m.File == "" || m.File != filepath.Base(m.File) || m.File == "." || m.File == ".." {
		bad("file %q: must be a plain file name", m.File)
	}
	if b, err := hex.DecodeString(m.SHA256); err != nil || len(b) != 32 {
		bad("sha256 %q: must be 64 hex digits", m.SHA256)
	}
	if m.Precision != "float32" && m.Precision != "float16" {
		bad("precision %q: want float32 or float16", m.Precision)
	}
	for _, side := range []struct {
		kind    string
		tensors []TensorSpec
	}{{"inputs", m.Inputs}, {"outputs", m.Outputs}} {
		if len(side.tensors) == 0 {
			bad("%s: none listed", side.kind)
		}
		seen := map[string]bool{}
		for i, t := range side.tensors {
			if t.Name == "" {
				bad("%s[%d]: name is missing", side.kind, i)
			} else if seen[t.Name] {
				bad("%s[%d]: name %q repeated", side.kind, i, t.Name)
			}
			seen[t.Name] = true
			switch t.DType {
			case "float32", "float16", "int64":
			default:
				bad("%s %q: dtype %q: want float32, float16 or int64", side.kind, t.Name, t.DType)
			}
			for _, d := range t.Shape {
				if n, fixed := d.Size(); fixed && n <= 0 {
					bad("%s %q: shape %v: fixed dimensions must be positive", side.kind, t.Name, t.Shape)
					break
				}
			}
		}
	}
	return errs
}
