// Package standin generates small, deterministic stand-ins for LatentSync's
// networks, with exactly its tensor contract, plus the bundle manifest, so the
// whole pipeline runs in tests and on CPUs without the real weights. The
// face detector is not generated: the manifest pins the real BlazeFace model,
// which the Makefile downloads next to the generated files.
package standin

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"

	"github.com/latentsync/latentsync-service/gpuworker/bundle"
	"github.com/latentsync/latentsync-service/gpuworker/ddim"
	"github.com/latentsync/latentsync-service/internal/onnxbuild"
)

// DefaultResolution is LatentSync 1.5's face crop side.
const DefaultResolution = 256

// ManifestFile is the manifest's name inside a bundle directory.
const ManifestFile = "manifest.json"

// The face detector: MediaPipe BlazeFace, back-camera model (Apache-2.0),
// as read with onnxruntime_go's GetInputOutputInfo. Pinned here so that
// generation works without the file.
const (
	FaceDetectorFile   = "face_detection_back_256x256_barracuda.onnx"
	FaceDetectorSHA256 = "427cbbe0fc41448d09e1dc9cfabe2423d997cf2faaeab91fadd09a510b63b8e2"
)

func faceDetector() bundle.Model {
	return bundle.Model{
		File:      FaceDetectorFile,
		SHA256:    FaceDetectorSHA256,
		Precision: "float32",
		Inputs:    []bundle.TensorSpec{tensor("input:0", "float32", 1, 256, 256, 3)},
		Outputs: []bundle.TensorSpec{
			tensor("Identity:0", "float32", 1, 512, 1),    // scores, 16x16 anchors x2
			tensor("Identity_1:0", "float32", 1, 384, 1),  // scores, 8x8 anchors x6
			tensor("Identity_2:0", "float32", 1, 512, 16), // box + 6 keypoints
			tensor("Identity_3:0", "float32", 1, 384, 16),
		},
	}
}

// File is one generated file of the bundle.
type File struct {
	Name string
	Data []byte
}

// Build generates every stand-in network for crops of side resolution, and
// the manifest describing them and the face detector. Files lists the models
// first and manifest.json last. The output is the same bytes on every run.
func Build(resolution int) (*bundle.Manifest, []File, error) {
	if resolution < 64 || resolution%8 != 0 {
		return nil, nil, fmt.Errorf("standin: resolution %d: want a multiple of 8, at least 64", resolution)
	}
	m := manifest(resolution)
	var files []File
	for _, n := range networks(resolution) {
		data, err := n.encode(resolution)
		if err != nil {
			return nil, nil, fmt.Errorf("standin: %s: %w", n.file, err)
		}
		sum := sha256.Sum256(data)
		m.Models[n.role] = bundle.Model{
			File:      n.file,
			SHA256:    hex.EncodeToString(sum[:]),
			Precision: "float32",
			Inputs:    n.inputs,
			Outputs:   n.outputs,
		}
		files = append(files, File{Name: n.file, Data: data})
	}
	if err := m.Validate(); err != nil {
		return nil, nil, fmt.Errorf("standin: generated manifest: %w", err)
	}
	js, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, nil, fmt.Errorf("standin: encode manifest: %w", err)
	}
	files = append(files, File{Name: ManifestFile, Data: append(js, '\n')})
	return m, files, nil
}

// Write generates the bundle into dir, creating it if needed. Each file is
// written under a temporary name and renamed, manifest last, so a reader
// never sees a half-written file.
func Write(dir string, resolution int) (*bundle.Manifest, error) {
	m, files, err := Build(resolution)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("standin: %w", err)
	}
	for _, f := range files {
		if err := writeFile(filepath.Join(dir, f.Name), f.Data); err != nil {
			return nil, fmt.Errorf("standin: %w", err)
		}
	}
	return m, nil
}

func writeFile(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func (n network) encode(res int) ([]byte, error) {
	g := onnxbuild.NewGraph("latentsync_standin_" + n.role)
	for _, t := range n.inputs {
		g.Input(t.Name, dataType(t.DType), dims(t.Shape)...)
	}
	n.build(g, newWeights(), res) // a fresh seeded source per model
	for _, t := range n.outputs {
		g.Output(t.Name, dataType(t.DType), dims(t.Shape)...)
	}
	return onnxbuild.NewModel(g).Bytes()
}

func dataType(dtype string) onnxbuild.DataType {
	switch dtype {
	case "int64":
		return onnxbuild.Int64
	case "float16":
		return onnxbuild.Float16
	}
	return onnxbuild.Float
}

func dims(shape []bundle.Dim) []any {
	out := make([]any, len(shape))
	for i, d := range shape {
		if n, fixed := d.Size(); fixed {
			out[i] = n
		} else {
			out[i] = d.Param()
		}
	}
	return out
}

// manifest fills everything but the generated models' entries.
func manifest(res int) *bundle.Manifest {
	// LatentSync's mask for 256 crops, inclusive: rows 95-242, columns 9-247;
	// other sizes scale its half-open bounds.
	scale := func(v int) int { return int(math.Round(float64(v) * float64(res) / 256)) }
	return &bundle.Manifest{
		FormatVersion: bundle.FormatVersion,
		Name:          "latentsync-standin",
		Version:       "standin-1",
		Description: "Deterministic stand-in networks with LatentSync 1.5's tensor contract, " +
			"generated by gpuworker/standin/gen for tests and CPU runs (they do not lip-sync). " +
			"face_detector is MediaPipe BlazeFace, back-camera 256x256 (Apache-2.0).",
		Parameters: bundle.Parameters{
			Resolution:       res,
			LatentChannels:   4,
			VAEScalingFactor: 0.18215,
			VAEShiftFactor:   0,
			FramesPerChunk:   framesPerCall,
			FPS:              25,
			Audio: bundle.AudioParams{
				SampleRate:     16000,
				NMels:          melBins,
				NFFT:           400,
				HopLength:      160,
				WindowSeconds:  30,
				StepsPerSecond: 50,
				Layers:         audioLayers,
				Dim:            audioDim,
				ContextBefore:  4,
				ContextAfter:   6,
			},
			Mask: bundle.MaskRect{Top: scale(95), Bottom: scale(243) - 1, Left: scale(9), Right: scale(248) - 1},
			FaceTemplate: bundle.FaceTemplate{
				RightEye: [2]float64{0.33, 0.34},
				LeftEye:  [2]float64{0.67, 0.34},
				Nose:     [2]float64{0.5, 0.52},
			},
			Scheduler: bundle.Scheduler{
				Type: "ddim",
				Config: ddim.Config{
					NumTrainTimesteps: trainTimesteps,
					BetaStart:         betaStart,
					BetaEnd:           betaEnd,
					BetaSchedule:      "scaled_linear",
					StepsOffset:       1,
					SetAlphaToOne:     false,
					PredictionType:    "epsilon",
					TimestepSpacing:   "leading",
				},
			},
			Defaults: bundle.Defaults{InferenceSteps: 20, GuidanceScale: 1.5},
		},
		Models: map[string]bundle.Model{"face_detector": faceDetector()},
	}
}
