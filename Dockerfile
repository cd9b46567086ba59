# cedar-ext-authz container image.
#
#   docker build -t cedar-ext-authz:dev .
#   docker run --rm -p 9191:9191 -p 9192:9192 cedar-ext-authz:dev
#
# The image holds the binary, a default config and the repository's default
# policies; Kubernetes mounts its own (k8s/). It runs as distroless's
# `nonroot` user, 65532, with no shell and no package manager.

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
# Fetch every dependency first: build.rs runs `cargo metadata --offline`,
# which needs the whole locked graph (dev-dependencies included) on disk.
RUN cargo fetch --locked
RUN cargo build --profile production --locked --bin cedar-ext-authz

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/production/cedar-ext-authz /usr/local/bin/cedar-ext-authz
COPY k8s/base/config.yaml /etc/cedar-ext-authz/config.yaml
COPY policies/schema.cedarschema policies/*.cedar policies/entities.json policies/links.yaml policies/routes.yaml /etc/cedar-ext-authz/policies/
USER 65532:65532
EXPOSE 9191 9192
ENTRYPOINT ["/usr/local/bin/cedar-ext-authz", "serve"]
CMD ["--config", "/etc/cedar-ext-authz/config.yaml"]
