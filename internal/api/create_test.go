package api_test

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/latentsync/latentsync-service/internal/api"
	"github.com/latentsync/latentsync-service/internal/job"
)

func TestCreate(t *testing.T) {
	e := newEnv(t, options{})
	body := validBody()
	body["options"] = map[string]any{"inference_steps": 30, "seed": 7, "sync_mode": "loop"}
	body["webhook"] = map[string]any{"url": "https://93.184.215.14/hooks/lipsync"}
	body["notify_email"] = "ops@example.com"
	body["client_reference"] = "order 42 – Zürich"
	x := e.do(t, "POST", "/v1/jobs", keyA, body, nil)
	if x.status != http.StatusCreated {
		t.Fatalf("status %d %s", x.status, x.body)
	}
	var c created
	x.decode(t, &c)
	if c.Status != job.AwaitingUpload || c.Links["self"] != "/v1/jobs/"+c.ID || x.header.Get("Location") != "/v1/jobs/"+c.ID {
		t.Errorf("created %+v, Location %q", c, x.header.Get("Location"))
	}
	if x.header.Get("Idempotent-Replayed") != "" {
		t.Error("a new job is marked as replayed")
	}
	for in, ct := range map[string]string{"video": "video/mp4", "audio": "audio/wav"} {
		u := c.Uploads[in]
		if u.Method != http.MethodPut || u.Headers["Content-Type"] != ct || !u.ExpiresAt.Equal(t0.Add(15*time.Minute)) ||
			!strings.Contains(u.URL, job.UploadKey(tenantA, c.ID, job.Input(in))) {
			t.Errorf("upload %s = %+v; want a PUT of %s at its key, expiring 15 min from now", in, u, ct)
		}
	}

	j, err := e.jobs.Get(t.Context(), tenantA, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := job.Options{InferenceSteps: 30, GuidanceScale: job.DefaultGuidance, Seed: 7, SyncMode: "loop"}
	switch {
	case j.Tenant != tenantA || j.Status != job.AwaitingUpload || !j.CreatedAt.Equal(t0):
		t.Errorf("stored tenant %q status %s created %s", j.Tenant, j.Status, j.CreatedAt)
	case !j.UploadDeadline.Equal(t0.Add(24*time.Hour)) || !j.ExpireAt.Equal(t0.Add(30*24*time.Hour)):
		t.Errorf("upload deadline %s, record expiry %s; want +24h, +30d", j.UploadDeadline, j.ExpireAt)
	case j.Options != want:
		t.Errorf("options %+v, want %+v", j.Options, want)
	case j.Video != (job.Media{ContentType: "video/mp4", SizeBytes: 1234}) || j.Audio != (job.Media{ContentType: "audio/wav", SizeBytes: 567}):
		t.Errorf("media %+v %+v", j.Video, j.Audio)
	case j.WebhookURL != "https://93.184.215.14/hooks/lipsync" || j.NotifyEmail != "ops@example.com" || j.ClientReference != "order 42 – Zürich":
		t.Errorf("webhook %q email %q reference %q", j.WebhookURL, j.NotifyEmail, j.ClientReference)
	}

	var v job.View
	g := e.do(t, "GET", "/v1/jobs/"+c.ID, keyA, nil, nil)
	g.decode(t, &v)
	if g.status != http.StatusOK || v.ID != c.ID || v.Status != job.AwaitingUpload || v.Options != want || v.ClientReference != j.ClientReference {
		t.Errorf("get after create: %d %s", g.status, g.body)
	}
}

// TestCreateRejects covers every validation rule. specRejects says whether
// the OpenAPI document refuses the request too; where it does not, the rule
// is one a schema cannot express (limits, address checks) and the document
// describes it in words.
func TestCreateRejects(t *testing.T) {
	e := newEnv(t, options{})
	with := func(edit func(b map[string]any)) map[string]any {
		b := validBody()
		edit(b)
		return b
	}
	media := func(ct string, size any) map[string]any {
		return map[string]any{"content_type": ct, "size_bytes": size}
	}
	opt := func(k string, v any) map[string]any {
		return with(func(b map[string]any) { b["options"] = map[string]any{k: v} })
	}
	hook := func(url string) map[string]any {
		return with(func(b map[string]any) { b["webhook"] = map[string]any{"url": url} })
	}
	tests := []struct {
		name        string
		body        any
		hdr         map[string]string
		status      int
		code        string
		msg         string
		specRejects bool
	}{
		{"empty body", "", nil, 400, "INVALID_REQUEST", "body is empty", true},
		{"not JSON", `{"video":`, nil, 400, "INVALID_REQUEST", "not valid JSON", true},
		{"array", `[]`, nil, 400, "INVALID_REQUEST", "must be a JSON object", true},
		{"trailing data", `{"video":{"content_type":"video/mp4","size_bytes":1},"audio":{"content_type":"audio/wav","size_bytes":1}} {}`,
			nil, 400, "INVALID_REQUEST", "data after the JSON object", false}, // kin-openapi reads only the first value
		{"unknown field", with(func(b map[string]any) { b["colour"] = "red" }), nil, 400, "INVALID_REQUEST", `unknown field "colour"`, true},
		{"unknown media field", with(func(b map[string]any) { b["video"].(map[string]any)["codec"] = "h264" }),
			nil, 400, "INVALID_REQUEST", `unknown field "codec"`, true},
		{"form content type", validBody(), map[string]string{"Content-Type": "application/x-www-form-urlencoded"},
			400, "INVALID_REQUEST", "Content-Type must be application/json", true},
		{"body over 64 KiB", with(func(b map[string]any) { b["client_reference"] = strings.Repeat("x", 70<<10) }),
			nil, 400, "INVALID_REQUEST", "exceeds 65536 bytes", true},
		{"no video", with(func(b map[string]any) { delete(b, "video") }), nil, 400, "INVALID_REQUEST", "video is required", true},
		{"no audio", with(func(b map[string]any) { delete(b, "audio") }), nil, 400, "INVALID_REQUEST", "audio is required", true},
		{"video not an object", with(func(b map[string]any) { b["video"] = "clip.mp4" }), nil, 400, "INVALID_REQUEST", "video must be an object", true},
		{"no video content type", with(func(b map[string]any) { b["video"] = map[string]any{"size_bytes": 10} }),
			nil, 400, "INVALID_REQUEST", "video.content_type is required", true},
		{"no audio size", with(func(b map[string]any) { b["audio"] = map[string]any{"content_type": "audio/wav"} }),
			nil, 400, "INVALID_REQUEST", "audio.size_bytes is required", true},
		{"zero size", with(func(b map[string]any) { b["video"] = media("video/mp4", 0) }), nil, 400, "INVALID_REQUEST", "video.size_bytes is required and must be a positive integer", true},
		{"negative size", with(func(b map[string]any) { b["audio"] = media("audio/wav", -5) }), nil, 400, "INVALID_REQUEST", "audio.size_bytes is required and must be a positive integer", true},
		{"fractional size", with(func(b map[string]any) { b["video"] = media("video/mp4", 1.5) }), nil, 400, "INVALID_REQUEST", "video.size_bytes must be an integer", true},
		{"size as string", with(func(b map[string]any) { b["video"] = media("video/mp4", "12") }), nil, 400, "INVALID_REQUEST", "video.size_bytes must be an integer", true},
		{"content type as number", with(func(b map[string]any) { b["audio"] = media("", 1); b["audio"].(map[string]any)["content_type"] = 3 }),
			nil, 400, "INVALID_REQUEST", "audio.content_type must be a string", true},
		{"unsupported video type", with(func(b map[string]any) { b["video"] = media("video/x-msvideo", 10) }),
			nil, 415, "UNSUPPORTED_MEDIA", `video.content_type "video/x-msvideo" is not supported`, false},
		{"unsupported audio type", with(func(b map[string]any) { b["audio"] = media("audio/ogg", 10) }),
			nil, 415, "UNSUPPORTED_MEDIA", `audio.content_type "audio/ogg" is not supported`, false},
		{"audio type as video", with(func(b map[string]any) { b["video"] = media("audio/wav", 10) }),
			nil, 415, "UNSUPPORTED_MEDIA", `video.content_type "audio/wav" is not supported`, false},
		{"content type parameters", with(func(b map[string]any) { b["video"] = media("video/mp4; codecs=avc1", 10) }),
			nil, 415, "UNSUPPORTED_MEDIA", "without parameters", false},
		{"video over 500 MB", with(func(b map[string]any) { b["video"] = media("video/mp4", 500_000_001) }),
			nil, 413, "MEDIA_TOO_LARGE", "video.size_bytes is 500000001; the limit is 500000000 bytes", false},
		{"audio over 100 MB", with(func(b map[string]any) { b["audio"] = media("audio/mpeg", 100_000_001) }),
			nil, 413, "MEDIA_TOO_LARGE", "audio.size_bytes is 100000001; the limit is 100000000 bytes", false},
		{"too many steps", opt("inference_steps", 101), nil, 400, "INVALID_REQUEST", "options.inference_steps must be 1 to 100, got 101", true},
		{"guidance below 1", opt("guidance_scale", 0.5), nil, 400, "INVALID_REQUEST", "options.guidance_scale must be 1 to 10, got 0.5", true},
		{"negative seed", opt("seed", -1), nil, 400, "INVALID_REQUEST", "options.seed must not be negative", true},
		{"unknown sync mode", opt("sync_mode", "reverse"), nil, 400, "INVALID_REQUEST", `options.sync_mode must be cut_off, loop or bounce, got "reverse"`, true},
		{"unknown option", opt("strength", 2), nil, 400, "INVALID_REQUEST", `unknown field "strength"`, true},
		{"webhook without url", with(func(b map[string]any) { b["webhook"] = map[string]any{} }),
			nil, 400, "INVALID_REQUEST", "webhook.url is required", true},
		{"webhook over http", hook("http://93.184.215.14/hook"), nil, 400, "INVALID_REQUEST", "https only", true},
		{"webhook not a URL", hook("hooks.example.com/x"), nil, 400, "INVALID_REQUEST", "webhook.url is not allowed", true},
		{"webhook with credentials", hook("https://user:pw@93.184.215.14/hook"), nil, 400, "INVALID_REQUEST", "credentials", false},
		{"webhook to loopback", hook("https://127.0.0.1:8443/hook"), nil, 400, "INVALID_REQUEST", "not public", false},
		{"webhook to IPv6 loopback", hook("https://[::1]/hook"), nil, 400, "INVALID_REQUEST", "not public", false},
		{"webhook to private network", hook("https://10.1.2.3/hook"), nil, 400, "INVALID_REQUEST", "not public", false},
		{"webhook to metadata service", hook("https://169.254.169.254/latest/meta-data"), nil, 400, "INVALID_REQUEST", "not public", false},
		{"webhook to a name for loopback", hook("https://localhost/hook"), nil, 400, "INVALID_REQUEST", "not public", false},
		{"notify_email not an address", with(func(b map[string]any) { b["notify_email"] = "ops at example" }),
			nil, 400, "INVALID_REQUEST", "notify_email must be a plain email address", false},
		{"notify_email with a name", with(func(b map[string]any) { b["notify_email"] = "Ops <ops@example.com>" }),
			nil, 400, "INVALID_REQUEST", "notify_email must be a plain email address", false},
		{"client_reference too long", with(func(b map[string]any) { b["client_reference"] = strings.Repeat("r", 257) }),
			nil, 400, "INVALID_REQUEST", "client_reference must be at most 256 bytes", true},
		{"client_reference control character", with(func(b map[string]any) { b["client_reference"] = "a\x00b" }),
			nil, 400, "INVALID_REQUEST", "without control characters", false},
		{"idempotency key too long", validBody(), map[string]string{"Idempotency-Key": strings.Repeat("k", 256)},
			400, "INVALID_REQUEST", "Idempotency-Key header must be 1 to 255 printable ASCII characters", true},
		{"idempotency key with a space", validBody(), map[string]string{"Idempotency-Key": "my key"},
			400, "INVALID_REQUEST", "Idempotency-Key header must be 1 to 255 printable ASCII characters", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			x := e.call(t, "POST", "/v1/jobs", keyA, tc.body, tc.hdr)
			x.wantError(t, tc.status, tc.code, tc.msg)
			if got := x.specErr != nil; got != tc.specRejects {
				t.Errorf("document rejects the request: %v (%v), want %v", got, x.specErr, tc.specRejects)
			}
		})
	}
	// Nothing was stored by any refused request.
	if jobs, _, err := e.jobs.List(t.Context(), tenantA, "", 100, ""); err != nil || len(jobs) != 0 {
		t.Errorf("after refused requests the tenant has %d jobs (%v), want 0", len(jobs), err)
	}
}

// TestCreateAccepts covers what the rules let through, including the
// normalisations (lower-case types, defaults).
func TestCreateAccepts(t *testing.T) {
	e := newEnv(t, options{})
	tests := []struct {
		name                 string
		video, audio         string
		videoSize, audioSize int64
		options              map[string]any
		wantVideo, wantAudio string
		wantOptions          job.Options
		specRejects          bool
	}{
		{name: "mp4 and wav at the size limits", video: "video/mp4", audio: "audio/wav", videoSize: 500_000_000, audioSize: 100_000_000},
		{name: "quicktime and m4a", video: "video/quicktime", audio: "audio/x-m4a"},
		{name: "webm and mp3", video: "video/webm", audio: "audio/mpeg"},
		{name: "audio in mp4", video: "video/mp4", audio: "audio/mp4"},
		{name: "speech from a video file", video: "video/mp4", audio: "video/quicktime"},
		{name: "wave spellings", video: "video/mp4", audio: "audio/x-wav"},
		{name: "upper case types", video: "Video/MP4", audio: "AUDIO/WEBM", wantVideo: "video/mp4", wantAudio: "audio/webm"},
		{name: "explicit defaults", video: "video/mp4", audio: "audio/wave",
			options: map[string]any{"inference_steps": 20, "guidance_scale": 1.5, "seed": 0, "sync_mode": "cut_off"}},
		{name: "bounds", video: "video/mp4", audio: "audio/wav",
			options:     map[string]any{"inference_steps": 100, "guidance_scale": 10, "seed": 1 << 40, "sync_mode": "bounce"},
			wantOptions: job.Options{InferenceSteps: 100, GuidanceScale: 10, Seed: 1 << 40, SyncMode: "bounce"}},
		// Zero means "default" to the handler; the document asks for real values.
		{name: "zeros take defaults", video: "video/mp4", audio: "audio/wav",
			options: map[string]any{"inference_steps": 0, "guidance_scale": 0}, specRejects: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.videoSize == 0 {
				tc.videoSize, tc.audioSize = 4096, 2048
			}
			if tc.wantVideo == "" {
				tc.wantVideo, tc.wantAudio = tc.video, tc.audio
			}
			if tc.wantOptions == (job.Options{}) {
				tc.wantOptions = job.Options{InferenceSteps: 20, GuidanceScale: 1.5, SyncMode: "cut_off"}
			}
			body := map[string]any{
				"video": map[string]any{"content_type": tc.video, "size_bytes": tc.videoSize},
				"audio": map[string]any{"content_type": tc.audio, "size_bytes": tc.audioSize},
			}
			if tc.options != nil {
				body["options"] = tc.options
			}
			x := e.call(t, "POST", "/v1/jobs", keyA, body, nil)
			if x.status != http.StatusCreated {
				t.Fatalf("status %d %s", x.status, x.body)
			}
			if got := x.specErr != nil; got != tc.specRejects {
				t.Errorf("document rejects the request: %v (%v), want %v", got, x.specErr, tc.specRejects)
			}
			var c created
			x.decode(t, &c)
			if c.Uploads["video"].Headers["Content-Type"] != tc.wantVideo || c.Uploads["audio"].Headers["Content-Type"] != tc.wantAudio {
				t.Errorf("upload content types %q %q, want %q %q", c.Uploads["video"].Headers["Content-Type"],
					c.Uploads["audio"].Headers["Content-Type"], tc.wantVideo, tc.wantAudio)
			}
			j, err := e.jobs.Get(t.Context(), tenantA, c.ID)
			if err != nil {
				t.Fatal(err)
			}
			if j.Video != (job.Media{ContentType: tc.wantVideo, SizeBytes: tc.videoSize}) ||
				j.Audio != (job.Media{ContentType: tc.wantAudio, SizeBytes: tc.audioSize}) || j.Options != tc.wantOptions {
				t.Errorf("stored %+v %+v %+v", j.Video, j.Audio, j.Options)
			}
		})
	}
}

func TestCreateConfiguredLimits(t *testing.T) {
	e := newEnv(t, options{limits: api.Limits{MaxVideoBytes: 1000, MaxAudioBytes: 10, UploadURLTTL: time.Minute,
		UploadWindow: time.Hour, RecordRetention: 48 * time.Hour}})
	body := validBody()
	body["video"] = map[string]any{"content_type": "video/mp4", "size_bytes": 1001}
	e.do(t, "POST", "/v1/jobs", keyA, body, nil).wantError(t, 413, "MEDIA_TOO_LARGE", "the limit is 1000 bytes")
	body["video"] = map[string]any{"content_type": "video/mp4", "size_bytes": 1000}
	body["audio"] = map[string]any{"content_type": "audio/wav", "size_bytes": 11}
	e.do(t, "POST", "/v1/jobs", keyA, body, nil).wantError(t, 413, "MEDIA_TOO_LARGE", "the limit is 10 bytes")
	body["audio"] = map[string]any{"content_type": "audio/wav", "size_bytes": 10}
	c := e.create(t, keyA, body)
	if !c.Uploads["video"].ExpiresAt.Equal(t0.Add(time.Minute)) {
		t.Errorf("upload URL expires %s, want in 1 min", c.Uploads["video"].ExpiresAt)
	}
	j, err := e.jobs.Get(t.Context(), tenantA, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !j.UploadDeadline.Equal(t0.Add(time.Hour)) || !j.ExpireAt.Equal(t0.Add(48*time.Hour)) {
		t.Errorf("deadline %s expiry %s, want +1h and +48h", j.UploadDeadline, j.ExpireAt)
	}
}

// Local serve delivers webhooks to the developer's own machine.
func TestCreateLocalWebhooks(t *testing.T) {
	const url = "http://127.0.0.1:9999/hook"
	body := validBody()
	body["webhook"] = map[string]any{"url": url}

	e := newEnv(t, options{local: true})
	x := e.call(t, "POST", "/v1/jobs", keyA, body, nil)
	if x.status != http.StatusCreated {
		t.Fatalf("local: status %d %s", x.status, x.body)
	}
	var c created
	x.decode(t, &c)
	if j, err := e.jobs.Get(t.Context(), tenantA, c.ID); err != nil || j.WebhookURL != url {
		t.Errorf("stored webhook %v %v", j, err)
	}

	e = newEnv(t, options{})
	e.call(t, "POST", "/v1/jobs", keyA, body, nil).wantError(t, 400, "INVALID_REQUEST", "webhook.url is not allowed")
}

func TestIdempotency(t *testing.T) {
	e := newEnv(t, options{})
	first := e.do(t, "POST", "/v1/jobs", keyA, validBody(), map[string]string{"Idempotency-Key": "order-1"})
	var c1 created
	first.decode(t, &c1)
	if first.status != http.StatusCreated || first.header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("first: %d replayed=%q", first.status, first.header.Get("Idempotent-Replayed"))
	}

	e.clock.Advance(time.Minute)
	// The same request, defaults spelled out, is the same request.
	same := validBody()
	same["options"] = map[string]any{"inference_steps": 20, "sync_mode": "cut_off"}
	for name, body := range map[string]map[string]any{"identical": validBody(), "defaults spelled out": same} {
		x := e.do(t, "POST", "/v1/jobs", keyA, body, map[string]string{"Idempotency-Key": "order-1"})
		var c created
		x.decode(t, &c)
		if x.status != http.StatusCreated || c.ID != c1.ID || x.header.Get("Idempotent-Replayed") != "true" {
			t.Errorf("%s replay: %d id %s (want %s) replayed=%q", name, x.status, c.ID, c1.ID, x.header.Get("Idempotent-Replayed"))
		}
		if !c.Uploads["video"].ExpiresAt.Equal(e.clock.Now().Add(15*time.Minute)) || c.Uploads["video"].URL == c1.Uploads["video"].URL {
			t.Errorf("%s replay: upload URL not freshly presigned: %+v", name, c.Uploads["video"])
		}
	}

	changed := validBody()
	changed["audio"] = map[string]any{"content_type": "audio/wav", "size_bytes": 568}
	e.do(t, "POST", "/v1/jobs", keyA, changed, map[string]string{"Idempotency-Key": "order-1"}).
		wantError(t, 409, "CONFLICT", "Idempotency-Key was already used with a different request")

	// Keys are scoped to the tenant; no key means a new job every time.
	other := e.create(t, keyB, validBody())
	b := e.do(t, "POST", "/v1/jobs", keyB, validBody(), map[string]string{"Idempotency-Key": "order-1"})
	var cb created
	b.decode(t, &cb)
	n1, n2 := e.create(t, keyA, validBody()), e.create(t, keyA, validBody())
	ids := map[string]bool{c1.ID: true, other.ID: true, cb.ID: true, n1.ID: true, n2.ID: true}
	if len(ids) != 5 || b.header.Get("Idempotent-Replayed") != "" {
		t.Errorf("want 5 distinct jobs, got %v (tenant b replayed=%q)", ids, b.header.Get("Idempotent-Replayed"))
	}
	if jobs, _, err := e.jobs.List(t.Context(), tenantA, "", 100, ""); err != nil || len(jobs) != 3 {
		t.Errorf("tenant a has %d jobs (%v), want 3", len(jobs), err)
	}

	// A replay of a job that no longer awaits uploads offers no upload URLs.
	e.do(t, "DELETE", "/v1/jobs/"+c1.ID, keyA, nil, nil)
	x := e.do(t, "POST", "/v1/jobs", keyA, validBody(), map[string]string{"Idempotency-Key": "order-1"})
	var c created
	x.decode(t, &c)
	if x.status != http.StatusCreated || c.ID != c1.ID || c.Status != job.Canceled || c.Uploads != nil {
		t.Errorf("replay of a canceled job: %d %s", x.status, x.body)
	}
}

// TestUploadThroughPresignedURL uploads the way a client does: plain HTTP
// to the returned URL with the returned headers, no API key.
func TestUploadThroughPresignedURL(t *testing.T) {
	e := newEnv(t, options{})
	video := bytes.Repeat([]byte("not really a video "), 100)
	body := validBody()
	body["video"] = map[string]any{"content_type": "video/mp4", "size_bytes": len(video)}
	c := e.create(t, keyA, body)
	up := c.Uploads["video"]

	put := func(data []byte, contentType string) int {
		t.Helper()
		req, err := http.NewRequest(up.Method, up.URL, bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range up.Headers {
			req.Header.Set(k, v)
		}
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	// The URL is bound to the declared type and size.
	if s := put(video, "video/webm"); s < 400 {
		t.Errorf("PUT with another content type: %d, want refused", s)
	}
	if s := put(video[:len(video)-1], ""); s < 400 {
		t.Errorf("PUT of another size: %d, want refused", s)
	}
	if s := put(video, ""); s != http.StatusOK {
		t.Fatalf("PUT as presigned: %d", s)
	}
	key := job.UploadKey(tenantA, c.ID, job.VideoInput)
	a, err := e.blobs.Attributes(t.Context(), key)
	if err != nil || a.Size != int64(len(video)) || a.ContentType != "video/mp4" {
		t.Fatalf("stored upload %+v %v", a, err)
	}
	r, err := e.blobs.NewRangeReader(t.Context(), key, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if got, err := io.ReadAll(r); err != nil || !bytes.Equal(got, video) {
		t.Errorf("stored bytes differ (%v)", err)
	}
	// ... and to its 15 minutes.
	e.clock.Advance(15*time.Minute + time.Second)
	if s := put(video, ""); s < 400 {
		t.Errorf("PUT after the URL expired: %d, want refused", s)
	}
}
