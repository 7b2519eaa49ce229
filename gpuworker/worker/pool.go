package worker

import (
	"context"

	"github.com/latentsync/latentsync-service/gpuworker/pipeline"
)

// Pool is a Pipeline that hands each run to one of ps that is free: a
// *pipeline.Pipeline runs one job at a time, so a worker with Concurrency n
// gets n of them (for instance one per GPU).
func Pool(ps ...Pipeline) Pipeline {
	free := make(chan Pipeline, len(ps))
	for _, p := range ps {
		free <- p
	}
	return pool{free: free}
}

type pool struct{ free chan Pipeline }

func (p pool) Run(ctx context.Context, req pipeline.Request) (*pipeline.Result, error) {
	select {
	case pl := <-p.free:
		defer func() { p.free <- pl }()
		return pl.Run(ctx, req)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
