package metrics

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sync"
	"time"
)

// Metric is one value in a record.
type Metric struct {
	Name  string
	Unit  Unit
	Value float64
}

// Directive publishes Metrics under each of DimensionSets (every name in a
// set must be a key of the record's Dimensions).
type Directive struct {
	DimensionSets [][]string
	Metrics       []Metric
}

// Record is one EMF line: dimension values, metric directives and free
// properties, all flattened into one JSON object beside the _aws block.
type Record struct {
	Time       time.Time
	Dimensions map[string]string
	Directives []Directive
	Properties map[string]any
}

// Writer writes records to an io.Writer, one JSON line each. Lines from
// concurrent callers never interleave.
type Writer struct {
	mu        sync.Mutex
	out       io.Writer
	namespace string
}

// NewWriter writes to out under namespace ("" = DefaultNamespace; the
// worker passes $METRICS_NAMESPACE).
func NewWriter(out io.Writer, namespace string) *Writer {
	if namespace == "" {
		namespace = DefaultNamespace
	}
	return &Writer{out: out, namespace: namespace}
}

// CloudWatch's EMF limits (the agent drops a record that breaks them).
const (
	maxDimensionsPerSet = 30
	maxMetricsPerRecord = 100
)

// The EMF document, in the field order CloudWatch documents.
type emfRoot struct {
	Timestamp         int64          `json:"Timestamp"`
	CloudWatchMetrics []emfDirective `json:"CloudWatchMetrics"`
}

type emfDirective struct {
	Namespace  string      `json:"Namespace"`
	Dimensions [][]string  `json:"Dimensions"`
	Metrics    []emfMetric `json:"Metrics"`
}

type emfMetric struct {
	Name string `json:"Name"`
	Unit Unit   `json:"Unit"`
}

// Write validates r and writes it as one line. A record that CloudWatch
// would drop silently is an error here instead.
func (w *Writer) Write(r Record) error {
	doc := make(map[string]any, len(r.Dimensions)+len(r.Properties)+8)
	for k, v := range r.Properties {
		if k == "_aws" {
			return errors.New("emf: property named _aws")
		}
		doc[k] = v
	}
	for k, v := range r.Dimensions {
		if _, dup := doc[k]; dup {
			return fmt.Errorf("emf: %q is both a property and a dimension", k)
		}
		if v == "" {
			return fmt.Errorf("emf: dimension %q has an empty value", k)
		}
		doc[k] = v
	}
	root := emfRoot{Timestamp: r.Time.UnixMilli()}
	n := 0
	for _, d := range r.Directives {
		if len(d.Metrics) == 0 {
			continue
		}
		ed := emfDirective{Namespace: w.namespace, Dimensions: d.DimensionSets, Metrics: make([]emfMetric, 0, len(d.Metrics))}
		if ed.Dimensions == nil {
			ed.Dimensions = [][]string{} // CloudWatch requires the key even without dimensions
		}
		for _, set := range d.DimensionSets {
			if len(set) > maxDimensionsPerSet {
				return fmt.Errorf("emf: %d dimensions in one set (at most %d)", len(set), maxDimensionsPerSet)
			}
			for _, dim := range set {
				if _, ok := r.Dimensions[dim]; !ok {
					return fmt.Errorf("emf: dimension %q has no value", dim)
				}
			}
		}
		for _, m := range d.Metrics {
			if math.IsNaN(m.Value) || math.IsInf(m.Value, 0) {
				return fmt.Errorf("emf: metric %s is %v", m.Name, m.Value)
			}
			if _, dup := doc[m.Name]; dup {
				return fmt.Errorf("emf: metric %q collides with another field of the record", m.Name)
			}
			doc[m.Name] = m.Value
			ed.Metrics = append(ed.Metrics, emfMetric{Name: m.Name, Unit: m.Unit})
			n++
		}
		root.CloudWatchMetrics = append(root.CloudWatchMetrics, ed)
	}
	if n == 0 {
		return errors.New("emf: record without metrics")
	}
	if n > maxMetricsPerRecord {
		return fmt.Errorf("emf: %d metrics in one record (at most %d)", n, maxMetricsPerRecord)
	}
	doc["_aws"] = root
	line, err := json.Marshal(doc)
	if err != nil {
		return fmt.Errorf("emf: encode record: %w", err)
	}
	line = append(line, '\n')
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, err := w.out.Write(line); err != nil {
		return fmt.Errorf("emf: write record: %w", err)
	}
	return nil
}
