#!/usr/bin/env bash
# Build the CPU variant of the pgolf image from nothing, idempotently:
#   1. docker.io + debootstrap installed (apt) when missing
#   2. dockerd started when no engine answers
#   3. a Debian bookworm minbase rootfs debootstrapped and imported as the base image
#      (no image registry is reachable, so the base is made here, not pulled)
#   4. the wheelhouse filled with the CPU torch wheel, checked against docker/lock/cpu-wheelhouse.sha256
#   5. the base given a registry digest: pushed once to a throwaway local registry
#      (docker-registry on 127.0.0.1:5000, stopped again), because the engine resolves
#      FROM name@sha256:... only for images it knows by a registry digest
#   6. docker build with that name@sha256 as the base, from a context of the tracked sources
#      plus docker/wheelhouse (never .venv, data or runs)
# Each step is skipped when its result is already there. Usage: docker/build-cpu.sh [TAG]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$here")"
tag="${1:-${PGOLF_CPU_TAG:-pgolf:cpu}}"
base_ref="${PGOLF_CPU_BASE:-127.0.0.1:5000/pgolf-base:bookworm-minbase}"
registry_dir="${PGOLF_REGISTRY_DIR:-/var/lib/pgolf-registry}"
suite=bookworm
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
wheel_src="${PGOLF_WHEEL_DIR:-/opt/wheels}"

say() { echo "build-cpu: $*" >&2; }

ensure_tools() {
    command -v docker >/dev/null && command -v debootstrap >/dev/null && command -v docker-registry >/dev/null \
        && return
    say "installing docker.io, debootstrap and docker-registry"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        docker.io debootstrap docker-registry >/dev/null
}

ensure_engine() {
    docker info >/dev/null 2>&1 && return
    command -v dockerd >/dev/null || { say "no docker engine answers and dockerd is not installed"; exit 1; }
    say "starting dockerd (log: /var/log/pgolf-dockerd.log)"
    nohup dockerd >/var/log/pgolf-dockerd.log 2>&1 &
    for _ in $(seq 60); do docker info >/dev/null 2>&1 && return; sleep 1; done
    say "dockerd did not come up; see /var/log/pgolf-dockerd.log"; exit 1
}

ensure_base() {
    docker image inspect "$base_ref" >/dev/null 2>&1 && return
    local rootfs
    rootfs="$(mktemp -d /tmp/pgolf-rootfs.XXXXXX)"
    say "debootstrap --variant=minbase $suite into $rootfs (a few minutes)"
    debootstrap --variant=minbase "$suite" "$rootfs" "$mirror" >/dev/null
    # apt lists and caches are not part of the base: the Dockerfile updates them itself
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb
    tar -C "$rootfs" --numeric-owner -c . | docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'CMD ["bash"]' - "$base_ref" >/dev/null
    rm -rf "$rootfs"
}

fill_wheelhouse() {
    mkdir -p "$here/wheelhouse"
    local sum name
    while read -r sum name; do
        [ -n "$name" ] || continue
        [ -f "$here/wheelhouse/$name" ] || cp "$wheel_src/$name" "$here/wheelhouse/$name"
        echo "$sum  $here/wheelhouse/$name" | sha256sum -c --quiet - || { say "$name: sha256 differs from the lock"; exit 1; }
    done < "$here/lock/cpu-wheelhouse.sha256"
    # pip in the build stage trusts what the host trusts (a TLS-intercepting proxy's CA included);
    # the file stays in the build stage, never in the image
    local ca="${PGOLF_BUILD_CA:-/etc/ssl/certs/ca-certificates.crt}"
    if [ -f "$ca" ]; then cmp -s "$ca" "$here/wheelhouse/build-ca.crt" || cp "$ca" "$here/wheelhouse/build-ca.crt"; fi
}

base_digest() {
    docker image inspect --format '{{range .RepoDigests}}{{println .}}{{end}}' "$base_ref" | head -n 1
}

ensure_digest() {
    [ -n "$(base_digest)" ] && return
    local config pid
    config="$(mktemp /tmp/pgolf-registry.XXXXXX.yml)"
    printf 'version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: 127.0.0.1:5000\n' \
        "$registry_dir" > "$config"
    say "pushing the base to a local registry once, for its digest"
    docker-registry serve "$config" >/dev/null 2>&1 &
    pid=$!
    for _ in $(seq 30); do (exec 3<>/dev/tcp/127.0.0.1/5000) 2>/dev/null && break; sleep 0.5; done
    docker push -q "$base_ref" >/dev/null || { kill "$pid"; rm -f "$config"; say "push failed"; exit 1; }
    kill "$pid"
    rm -f "$config"
}

# the build context: what git tracks (and untracked files it does not ignore) plus the wheelhouse
pack_context() {
    (cd "$repo" && { git ls-files -z -c -o --exclude-standard -- pyproject.toml README.md compliance pipeline docker \
                         ':!docker/wheelhouse'
                     find docker/wheelhouse -type f -print0; } | tar --null -T - -c)
}

build_image() {
    local base
    base="$(base_digest)"
    say "building $tag on $base"
    pack_context | docker build -f docker/Dockerfile -t "$tag" \
        --build-arg VARIANT=cpu \
        --build-arg BASE="$base" \
        --build-arg PGOLF_GIT_COMMIT="$(git -C "$repo" rev-parse HEAD 2>/dev/null || echo unknown)" \
        -
}

ensure_tools
ensure_engine
ensure_base
ensure_digest
fill_wheelhouse
build_image
say "done: $tag"
