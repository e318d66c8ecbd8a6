# wxhub: one static binary in a small image. Build: docker build -t wxhub .
FROM golang:1.26.8 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=$(git describe --tags --always 2>/dev/null || echo docker)" -o /out/wxhub ./cmd/wxhub

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/wxhub /usr/local/bin/wxhub
USER nonroot
ENTRYPOINT ["/usr/local/bin/wxhub"]
CMD ["run", "--config", "/etc/wxhub/wxhub.yaml"]
