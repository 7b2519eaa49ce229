package pipeline

import (
	"context"
	"fmt"

	"github.com/latentsync/latentsync-service/gpuworker/ddim"
	"github.com/latentsync/latentsync-service/gpuworker/face"
	"github.com/latentsync/latentsync-service/gpuworker/infer"
	"github.com/latentsync/latentsync-service/internal/raster"
)

// chunkRunner turns one chunk of frames into lip-synced frames in place. Its
// buffers are sized once per job and reused for every chunk, so memory does
// not grow with the video.
type chunkRunner struct {
	pl       *Pipeline
	sched    *ddim.Scheduler
	guidance float32
	clock    *stageClock

	frames       int       // frames per chunk F
	crops        []float32 // F*3*R*R, the aligned faces in [-1,1]
	masked       []float32 // F*3*R*R, faces with the mouth blanked
	refLatent    []float32 // 4*F*r*r
	maskedLatent []float32 // 4*F*r*r
	initNoise    []float32 // 4*F*r*r, the same for every chunk
	latents      []float32 // 4*F*r*r
	sample       []float32 // B*13*F*r*r
	audioCtx     []float32 // B*F*ctx*dim (unconditional half stays zero)
	eps          []float32 // 4*F*r*r
	pred         []float32 // B*4*F*r*r, the UNet's output
	frameLatent  []float32 // F*4*r*r, the VAE's frame-major layout
}

func (pl *Pipeline) newChunkRunner(sched *ddim.Scheduler, guidance float64, seed uint64, clock *stageClock) *chunkRunner {
	f, res, lat := pl.p.FramesPerChunk, pl.res, pl.lat
	c := pl.p.LatentChannels
	batch := 1
	if guidance > 1 {
		batch = 2
	}
	ctxLen := (pl.p.Audio.ContextBefore + pl.p.Audio.ContextAfter) * pl.p.Audio.Layers * pl.p.Audio.Dim
	return &chunkRunner{
		pl: pl, sched: sched, guidance: float32(guidance), clock: clock, frames: f,
		crops:        make([]float32, f*3*res*res),
		masked:       make([]float32, f*3*res*res),
		refLatent:    make([]float32, c*f*lat*lat),
		maskedLatent: make([]float32, c*f*lat*lat),
		initNoise:    noise(seed, c*f*lat*lat),
		latents:      make([]float32, c*f*lat*lat),
		sample:       make([]float32, batch*(3*c+1)*f*lat*lat),
		audioCtx:     make([]float32, batch*f*ctxLen),
		eps:          make([]float32, c*f*lat*lat),
		pred:         make([]float32, batch*c*f*lat*lat),
		frameLatent:  make([]float32, f*c*lat*lat),
	}
}

func (r *chunkRunner) batch() int {
	if r.guidance > 1 {
		return 2
	}
	return 1
}

// run lip-syncs frames (n <= F) shown with transforms ms and audio context
// audioCtx (n frames of context). A short last chunk is padded by repeating
// its last frame, since the UNet takes exactly F frames.
func (r *chunkRunner) run(ctx context.Context, frames []*raster.RGB, ms []face.Affine, audioCtx []float32) error {
	pl := r.pl
	n, f, res := len(frames), r.frames, pl.res
	crop := 3 * res * res
	if err := r.clock.measure(StageWarp, func() error {
		for j := range f {
			src := min(j, n-1)
			if j > src {
				copy(r.crops[j*crop:(j+1)*crop], r.crops[src*crop:(src+1)*crop])
				continue
			}
			if err := face.WarpToCrop(frames[j], ms[j], res, r.crops[j*crop:(j+1)*crop]); err != nil {
				return fmt.Errorf("align frame: %w", err)
			}
		}
		for j := range f {
			for c := range 3 {
				base := j*crop + c*res*res
				for i, m := range pl.pixelMask {
					r.masked[base+i] = r.crops[base+i] * m
				}
			}
		}
		return nil
	}); err != nil {
		return err
	}
	if err := r.clock.measure(StageVAEEncode, func() error {
		if err := r.encode(ctx, r.crops, r.refLatent); err != nil {
			return fmt.Errorf("encode reference faces: %w", err)
		}
		if err := r.encode(ctx, r.masked, r.maskedLatent); err != nil {
			return fmt.Errorf("encode masked faces: %w", err)
		}
		return nil
	}); err != nil {
		return err
	}
	if err := r.clock.measure(StageDenoise, func() error { return r.denoise(ctx, audioCtx, n) }); err != nil {
		return err
	}
	if err := r.clock.measure(StageVAEDecode, func() error { return r.decode(ctx) }); err != nil {
		return err
	}
	return r.clock.measure(StageBlend, func() error {
		for j := range n {
			if err := face.BlendBack(frames[j], r.crops[j*crop:(j+1)*crop], pl.alpha, ms[j]); err != nil {
				return fmt.Errorf("blend frame: %w", err)
			}
		}
		return nil
	})
}

// encode runs the VAE encoder on F faces (CHW, [-1,1]) and stores the scaled
// latents frame-minor ([C][F][r][r]), the UNet's layout.
func (r *chunkRunner) encode(ctx context.Context, faces []float32, dst []float32) error {
	pl := r.pl
	f, res, lat, c := r.frames, pl.res, pl.lat, pl.p.LatentChannels
	s := pl.b.VAEEncoder
	z := r.frameLatent
	if err := s.RunInto(ctx, map[string]infer.Tensor{
		s.Inputs()[0].Name: {Shape: []int64{int64(f), 3, int64(res), int64(res)}, Float: faces},
	}, map[string][]float32{s.Outputs()[0].Name: z}); err != nil {
		return err
	}
	scale, shift := float32(pl.p.VAEScalingFactor), float32(pl.p.VAEShiftFactor)
	plane := lat * lat
	for j := range f {
		for ch := range c {
			from := z[(j*c+ch)*plane : (j*c+ch+1)*plane]
			to := dst[(ch*f+j)*plane : (ch*f+j+1)*plane]
			for i, v := range from {
				to[i] = (v - shift) * scale
			}
		}
	}
	return nil
}

// denoise runs the DDIM loop with classifier-free guidance; the unconditional
// branch sees zero audio, as in LatentSync.
func (r *chunkRunner) denoise(ctx context.Context, audioCtx []float32, n int) error {
	pl := r.pl
	f, lat, c := r.frames, pl.lat, pl.p.LatentChannels
	plane := f * lat * lat // one channel of all frames
	per := len(r.audioCtx) / (r.batch() * f)
	// Conditional audio goes in the last batch entry; pad by repeating the last frame.
	cond := r.audioCtx[(r.batch()-1)*f*per:]
	for j := range f {
		src := min(j, n-1)
		copy(cond[j*per:(j+1)*per], audioCtx[src*per:(src+1)*per])
	}
	copy(r.latents, r.initNoise)
	channels := 3*c + 1
	for b := range r.batch() {
		s := r.sample[b*channels*plane:]
		copy(s[(c+1)*plane:(2*c+1)*plane], r.maskedLatent)
		copy(s[(2*c+1)*plane:(3*c+1)*plane], r.refLatent)
		m := s[c*plane : (c+1)*plane]
		for j := range f {
			copy(m[j*lat*lat:(j+1)*lat*lat], pl.latentMask)
		}
	}
	u := pl.b.UNet
	names := u.Inputs()
	batch := int64(r.batch())
	for _, t := range r.sched.Timesteps() {
		for b := range r.batch() {
			copy(r.sample[b*channels*plane:b*channels*plane+c*plane], r.latents)
		}
		out, err := u.Run(ctx, map[string]infer.Tensor{
			names[0].Name: {Shape: []int64{batch, int64(channels), int64(f), int64(lat), int64(lat)}, Float: r.sample},
			names[1].Name: {Shape: []int64{1}, Int: []int64{int64(t)}},
			names[2].Name: {Shape: []int64{batch * int64(f), int64(pl.p.Audio.ContextBefore+pl.p.Audio.ContextAfter) * int64(pl.p.Audio.Layers), int64(pl.p.Audio.Dim)}, Float: r.audioCtx},
		})
		if err != nil {
			return fmt.Errorf("UNet at timestep %d: %w", t, err)
		}
		pred := out[u.Outputs()[0].Name].Float
		if len(pred) != r.batch()*c*plane {
			return fmt.Errorf("UNet returned %d values, want %d", len(pred), r.batch()*c*plane)
		}
		if r.batch() == 2 {
			ddim.Guide(r.eps, pred[:c*plane], pred[c*plane:], r.guidance)
		} else {
			copy(r.eps, pred)
		}
		r.sched.Step(r.latents, r.eps, t)
	}
	return nil
}

// decode turns the final latents back into faces, overwriting the crops.
func (r *chunkRunner) decode(ctx context.Context) error {
	pl := r.pl
	f, lat, c := r.frames, pl.lat, pl.p.LatentChannels
	plane := lat * lat
	z := r.frameLatent
	scale, shift := float32(pl.p.VAEScalingFactor), float32(pl.p.VAEShiftFactor)
	for ch := range c {
		for j := range f {
			from := r.latents[(ch*f+j)*plane : (ch*f+j+1)*plane]
			to := z[(j*c+ch)*plane : (j*c+ch+1)*plane]
			for i, v := range from {
				to[i] = v/scale + shift
			}
		}
	}
	s := pl.b.VAEDecoder
	// The decoded faces replace the aligned ones: only the blend needs them now.
	if err := s.RunInto(ctx, map[string]infer.Tensor{
		s.Inputs()[0].Name: {Shape: []int64{int64(f), int64(c), int64(lat), int64(lat)}, Float: z},
	}, map[string][]float32{s.Outputs()[0].Name: r.crops}); err != nil {
		return fmt.Errorf("VAE decoder: %w", err)
	}
	return nil
}
