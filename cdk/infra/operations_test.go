package infra

import (
	"reflect"
	"strings"
	"testing"

	"github.com/latentsync/latentsync-service/internal/metrics"
)

// TestAlarms: the alarms of DESIGN.md section 6, their thresholds, and that
// each one notifies the alarm topic.
func TestAlarms(t *testing.T) {
	s := stackUnderTest(t)
	topic, _ := s.one(t, "AWS::SNS::Topic", "Alarms")
	for _, tc := range []struct {
		id        string
		metric    string // single metric name, or "" for metric math
		expr      string // substring of the math expression
		op        string
		threshold float64
		period    float64 // seconds; 0: not checked (math)
		periods   float64
	}{
		{"OperationsEndToEndP95", metrics.EndToEndSeconds, "", "GreaterThanThreshold", 300, 300, 3},
		{"OperationsFailureRate", "", "100 * FILL(failed, 0)", "GreaterThanThreshold", 5, 0, 1},
		{"OperationsJobsDLQ", "", "FILL(visible, 0) + FILL(inflight, 0)", "GreaterThanThreshold", 0, 0, 1},
		{"OperationsIdleGPUs", "", "FILL(instances, 0)", "GreaterThanThreshold", 0, 0, 6},
		{"OperationsWorkerRestarts", metrics.WorkerStarts, "", "GreaterThanThreshold", float64(2 * s.cfg.MaxWorkers), 1800, 1},
		{"OperationsSyncConfidence", metrics.SyncConfidence, "", "LessThanThreshold", s.cfg.MinSyncConfidence, 1800, 2},
	} {
		t.Run(tc.id, func(t *testing.T) {
			_, a := s.one(t, "AWS::CloudWatch::Alarm", tc.id)
			p := a.Properties
			if p["ComparisonOperator"] != tc.op || p["Threshold"] != tc.threshold || p["EvaluationPeriods"] != tc.periods {
				t.Errorf("%v %v over %v periods, want %s %v over %v", p["ComparisonOperator"], p["Threshold"], p["EvaluationPeriods"], tc.op, tc.threshold, tc.periods)
			}
			if tc.metric != "" && (p["MetricName"] != tc.metric || p["Period"] != tc.period) {
				t.Errorf("metric %v period %v, want %s %v", p["MetricName"], p["Period"], tc.metric, tc.period)
			}
			if tc.expr != "" && !strings.Contains(jsonString(p["Metrics"]), tc.expr) {
				t.Errorf("math %s lacks %q", jsonString(p["Metrics"]), tc.expr)
			}
			if !reflect.DeepEqual(p["AlarmActions"], []any{ref(topic)}) {
				t.Errorf("actions %v, want the alarm topic", p["AlarmActions"])
			}
		})
	}
	_, failure := s.one(t, "AWS::CloudWatch::Alarm", "OperationsFailureRate")
	if !strings.Contains(jsonString(failure.Properties["Metrics"]), `"Period":900`) {
		t.Errorf("failure rate not over 15 minutes: %s", jsonString(failure.Properties["Metrics"]))
	}
	_, p95 := s.one(t, "AWS::CloudWatch::Alarm", "OperationsEndToEndP95")
	if p95.Properties["ExtendedStatistic"] != "p95" || p95.Properties["Namespace"] != MetricsNamespace(s.cfg) {
		t.Errorf("end-to-end alarm reads %v of %v", p95.Properties["ExtendedStatistic"], p95.Properties["Namespace"])
	}
}

func TestDashboardAndOutputs(t *testing.T) {
	s := stackUnderTest(t)
	_, dash := s.one(t, "AWS::CloudWatch::Dashboard", "Operations")
	body := jsonString(dash.Properties["DashboardBody"])
	for _, title := range []string{"Queue depth", "Workers", "Job durations", "Failures by code", "GPU use"} {
		if !strings.Contains(body, title) {
			t.Errorf("dashboard lacks %q", title)
		}
	}
	for _, name := range []string{"ApiUrl", "UploadsBucket", "OutputsBucket", "ModelsBucket", "JobsQueueUrl"} {
		if _, ok := s.outputs[name]; !ok {
			t.Errorf("no stack output %s", name)
		}
	}
}
