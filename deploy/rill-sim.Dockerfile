# The simulated `rill-sim` binary (release, RUSTFLAGS="--cfg madsim") with rill's named
# scenarios, for sharded sweeps on Kubernetes (deploy/sweep-indexed-job.yaml). From the
# workspace root:
#
#   docker build -f deploy/rill-sim.Dockerfile -t REGISTRY/rill-sim:TAG .
#   docker push REGISTRY/rill-sim:TAG
#
# (deploy/rill-sim.Dockerfile.dockerignore keeps target/ and target-sim/ out of the context.)

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target-sim \
    RUSTFLAGS="--cfg madsim" CARGO_TARGET_DIR=target-sim \
    cargo build --release --locked -p rill-scenarios --bin rill-sim \
 && cp target-sim/release/rill-sim /usr/local/bin/rill-sim

FROM debian:bookworm-slim
COPY --from=build /usr/local/bin/rill-sim /usr/local/bin/rill-sim
# The binary reads its scenario files from where it was built (rill_scenarios::specs_dir()).
COPY --from=build /src/scenarios/specs /src/scenarios/specs
USER 65532:65532
ENTRYPOINT ["rill-sim"]
