# syntax=docker/dockerfile:1
#
# Tandem's images, built for every architecture with `make image` (docker buildx):
#   services (the default target): the five service binaries and nothing else — no shell, no
#     package manager, non-root (65532). Each Deployment runs one of them by command
#     (deploy/k8s); there is no entrypoint.
#   cli: the `tandem` CLI (status, plan, dev, sim, chaos, bench) with redis-server for the
#     all-in-one `tandem dev`; never deployed as a service.
# Base images are pinned by digest; to update one, `docker buildx imagetools inspect <image:tag>`
# and replace the digest.

ARG GO_IMAGE=golang:1.26.6-bookworm@sha256:116d58cbd88c1297624acc6e967a060012422bacf9930927e23fb719189c6f36
ARG RUNTIME_IMAGE=gcr.io/distroless/static-debian12:nonroot@sha256:afa5c872c891853ca7fcf1f12c3edb23f7eeef36189728842dd51042ff57f7ab
ARG CLI_IMAGE=debian:bookworm-slim@sha256:7b140f374b289a7c2befc338f42ebe6441b7ea838a042bbd5acbfca6ec875818

# The compiler runs on the build machine's architecture and cross-compiles (pure Go, no cgo).
FROM --platform=$BUILDPLATFORM ${GO_IMAGE} AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-mod=readonly
# Modules first, as their own layer: a source change does not download them again.
COPY go.work go.work.sum ./
COPY proto/go.mod proto/go.sum proto/
COPY pkg/go.mod pkg/go.sum pkg/
COPY services/scheduler/go.mod services/scheduler/go.sum services/scheduler/
COPY services/exchange-worker/go.mod services/exchange-worker/go.sum services/exchange-worker/
COPY services/salesforce-worker/go.mod services/salesforce-worker/go.sum services/salesforce-worker/
COPY services/reconciler/go.mod services/reconciler/go.sum services/reconciler/
COPY services/status-api/go.mod services/status-api/go.sum services/status-api/
COPY cmd/tandem/go.mod cmd/tandem/go.sum cmd/tandem/
COPY deploy/go.mod deploy/go.sum deploy/
RUN go mod download
COPY . .
ARG TARGETOS TARGETARCH
ARG VERSION=dev
ARG COMMIT=unknown
ARG DATE=
RUN --mount=type=cache,target=/root/.cache/go-build \
    set -eu; \
    ldflags="-s -w -X github.com/tandem-sync/tandem/pkg/platform.Version=${VERSION} -X github.com/tandem-sync/tandem/pkg/platform.Commit=${COMMIT} -X github.com/tandem-sync/tandem/pkg/platform.Date=${DATE}"; \
    for s in scheduler exchange-worker salesforce-worker reconciler status-api; do \
      GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath -buildvcs=false -ldflags="$ldflags" -o /out/services/$s ./services/$s/cmd/$s; \
    done; \
    GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath -buildvcs=false -ldflags="$ldflags" -o /out/cli/tandem ./cmd/tandem

FROM ${CLI_IMAGE} AS cli
RUN apt-get update && apt-get install -y --no-install-recommends redis-server ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/cli/tandem /usr/local/bin/tandem
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/tandem"]

FROM ${RUNTIME_IMAGE} AS services
ARG VERSION=dev
ARG COMMIT=unknown
ARG DATE=
LABEL org.opencontainers.image.title="Tandem" \
      org.opencontainers.image.description="Server-side sync of contacts and calendar events between Microsoft Exchange and Salesforce" \
      org.opencontainers.image.source="https://github.com/tandem-sync/tandem" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${COMMIT}" \
      org.opencontainers.image.created="${DATE}"
COPY --from=build /out/services/ /usr/local/bin/
USER 65532:65532
