# Multi-arch: the build stage runs on the builder's own platform and
# cross-compiles for the target (no emulation), the final image comes in
# linux/amd64 and linux/arm64:
#   docker buildx build --platform linux/amd64,linux/arm64 -t REGISTRY/redis-gateway:TAG --push .
# Build stage: the Go version matches the go line of go.mod.
FROM --platform=$BUILDPLATFORM golang:1.26-bookworm AS build
WORKDIR /src

# Modules first, so code changes do not download them again.
COPY go.mod go.sum ./
RUN go mod download

COPY . .
ARG VERSION=dev
# Set by buildx from --platform (plain docker build sets them to its own).
ARG TARGETOS=linux
ARG TARGETARCH
# CGO off gives a static binary that needs no libc in the final image.
RUN CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
	go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/redis-gateway .

# Final stage: distroless static has no shell and no package manager, and runs
# as a non-root user. With no shell or curl, the health check is a subcommand
# of the binary itself. Its image index carries both architectures.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/redis-gateway /redis-gateway
USER nonroot:nonroot
ENV PORT=8080
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 CMD ["/redis-gateway", "healthcheck"]
ENTRYPOINT ["/redis-gateway"]
