# One image with every Tandem binary; each Deployment runs one of them (see deploy/k8s).
FROM golang:1.26 AS build
WORKDIR /src
COPY . .
ENV CGO_ENABLED=0
RUN for s in scheduler exchange-worker salesforce-worker reconciler status-api; do \
      go build -trimpath -ldflags="-s -w" -o /out/$s ./services/$s/cmd/$s || exit 1; \
    done && go build -trimpath -ldflags="-s -w" -o /out/tandem ./cmd/tandem

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/ /usr/local/bin/
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/tandem"]
