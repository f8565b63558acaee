# Build stage: the Go version matches the go line of go.mod.
FROM golang:1.26-bookworm AS build
WORKDIR /src

# Modules first, so code changes do not download them again.
COPY go.mod go.sum ./
RUN go mod download

COPY . .
ARG VERSION=dev
# CGO off gives a static binary that needs no libc in the final image.
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/redis-gateway .

# Final stage: distroless static has no shell and no package manager, and runs
# as a non-root user. With no shell or curl, the health check is a subcommand
# of the binary itself.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/redis-gateway /redis-gateway
USER nonroot:nonroot
ENV PORT=8080
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 CMD ["/redis-gateway", "healthcheck"]
ENTRYPOINT ["/redis-gateway"]
