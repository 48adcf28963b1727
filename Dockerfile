# Builds every command of b24queue into one small image; docker-compose.yml
# picks the command per service.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/ ./cmd/...

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/ /usr/local/bin/
COPY examples/ /examples/
USER nonroot:nonroot
EXPOSE 8080 8090
ENTRYPOINT []
CMD ["worker", "--help"]
