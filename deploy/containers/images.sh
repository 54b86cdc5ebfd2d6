#!/usr/bin/env bash
# Build streamflow's container images here, from Debian packages and the Maven artifacts the local
# stack uses; nothing is pulled from an image registry.
#
#   deploy/containers/images.sh [all|jre|python|kafka|registry|app]...   build (default: all)
#   deploy/containers/images.sh tags                                     print NAME=image lines
#   deploy/containers/images.sh app-files                                the app image's build context
#
#   jre       Debian minbase + a headless JRE (debootstrap, `docker import`)
#   python    Debian bookworm minbase + python3, python3-venv (debootstrap, `docker import`)
#   kafka     Kafka (KRaft) on the JRE base: the broker's jars as streamflow/testing/localstack/pom.xml
#             resolves them (copied from ~/.m2 by Maven), deploy/containers/kafka/
#   registry  Apicurio Registry on the JRE base: the app assembly from ~/.m2, deploy/containers/registry/
#   app       deploy/Dockerfile with BASE=<the python image>; the context carries the dashboard's
#             graph library, which `make dashboard-assets` installs with npm (git-ignored)
#
# Every image is tagged with a hash of its inputs (and its base image's tag), so a build whose inputs
# did not change finds its tag and does nothing. The engine comes from DOCKER_HOST (see engine.sh).
# The build folders live in $STREAMFLOW_IMAGES_DIR (default <repo>/.streamflow/images, git-ignored).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$HERE/../.." && pwd)"
WORK="${STREAMFLOW_IMAGES_DIR:-$REPO_ROOT/.streamflow/images}"
POM="$REPO_ROOT/streamflow/testing/localstack/pom.xml"
MIRROR="${STREAMFLOW_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
# Apicurio Registry 3.2+ needs Java 21+, which bookworm does not package: trixie's JRE serves both.
JRE_SUITE="${STREAMFLOW_JRE_SUITE:-trixie}"
JRE_PACKAGE="${STREAMFLOW_JRE_PACKAGE:-openjdk-21-jre-headless}"
PYTHON_SUITE="${STREAMFLOW_PYTHON_SUITE:-bookworm}"
# extra CA certificates the Python base trusts (pip inside `docker build` may sit behind a TLS proxy)
EXTRA_CAS="${STREAMFLOW_IMAGE_EXTRA_CAS:-/usr/local/share/ca-certificates}"

log() { printf '[images] %s\n' "$*" >&2; }
die() { printf '[images] ERROR: %s\n' "$*" >&2; exit 1; }

DOCKER="$(if [[ -x /usr/bin/docker ]]; then echo /usr/bin/docker; else command -v docker || true; fi)"
[[ -n "$DOCKER" ]] || die "no docker CLI; run deploy/containers/engine.sh up first"
export DOCKER_BUILDKIT=0 # the classic builder: BuildKit would look FROM images up in a registry

pom_property() { sed -n "s:.*<$1>\\(.*\\)</$1>.*:\\1:p" "$POM" | head -n 1; }
KAFKA_VERSION="$(pom_property kafka.version)"
APICURIO_VERSION="$(pom_property apicurio.version)"

hash_of() { # hash_of <text> <file>...: 12 hex digits over the text, the files' names and contents
    local text="$1"; shift
    # names relative to the checkout: two clones (or worktrees) of one commit share their tags
    { printf '%s\n' "$text"; for f in "$@"; do printf '%s\n' "${f#"$REPO_ROOT"/}"; cat "$f"; done; } \
        | sha256sum | cut -c1-12
}

have_image() { "$DOCKER" image inspect "$1" >/dev/null 2>&1; }

# tags (computed without building anything)
jre_tag() { printf 'streamflow/jre:%s' "$(hash_of "$JRE_SUITE $JRE_PACKAGE $MIRROR v1")"; }
ca_files() { find "$EXTRA_CAS" -maxdepth 1 -name '*.crt' 2>/dev/null | sort; }
python_tag() {
    local -a cas; mapfile -t cas < <(ca_files)
    printf 'streamflow/python:%s' "$(hash_of "$PYTHON_SUITE python3 python3-venv $MIRROR v1" "${cas[@]}")"
}
kafka_tag() {
    printf 'streamflow/kafka:%s-%s' "$KAFKA_VERSION" \
        "$(hash_of "$(jre_tag)" "$POM" "$HERE/kafka/Dockerfile" "$HERE/kafka/entrypoint.sh")"
}
registry_tag() {
    printf 'streamflow/apicurio-registry:%s-%s' "$APICURIO_VERSION" \
        "$(hash_of "$(jre_tag)" "$POM" "$HERE/registry/Dockerfile")"
}
dashboard_assets() { # the npm-installed files the wheel carries: pyproject.toml's package-data
    sed -n 's:^ *"\(dashboard/assets/node_modules/[^"]*\)".*:streamflow/\1:p' "$REPO_ROOT/pyproject.toml"
}
missing_assets() { (cd "$REPO_ROOT" && dashboard_assets | while read -r f; do
    [[ -f "$f" ]] || printf '%s\n' "$f"; done) }
app_files() { # what deploy/Dockerfile copies: tracked and new (not ignored) files, the dashboard's assets
    (cd "$REPO_ROOT" && { git ls-files -co --exclude-standard -- \
        pyproject.toml README.md LICENSE streamflow topologies schemas deploy/Dockerfile; dashboard_assets; } \
        | LC_ALL=C sort -u | while read -r f; do [[ -f "$f" ]] && printf '%s\n' "$f"; done)
}
need_assets() { # the app image serves the dashboard: its graph library must be in the context
    local missing; missing="$(missing_assets)"
    [[ -z "$missing" ]] || die "the dashboard's graph library is not installed; run \`make dashboard-assets\` (npm ci) first. Missing: ${missing//$'\n'/ }"
}
app_tag() {
    local -a files; mapfile -t files < <(app_files)
    printf 'streamflow/app:%s' "$(cd "$REPO_ROOT" && hash_of "$(python_tag)" "${files[@]}")"
}

# builders
debootstrap_import() { # debootstrap_import <tag> <suite> <packages> [<hook>]
    local tag="$1" suite="$2" packages="$3" hook="${4:-}"
    command -v debootstrap >/dev/null 2>&1 || die "debootstrap is needed (apt-get install debootstrap)"
    [[ "$(id -u)" == 0 ]] || die "debootstrap needs root to build $tag"
    local root="$WORK/rootfs-${tag//[\/:]/-}"
    rm -rf "$root"; mkdir -p "$root"
    log "$tag: debootstrap --variant=minbase $suite (+ $packages) from $MIRROR ..."
    if ! debootstrap --variant=minbase --include="$packages" "$suite" "$root" "$MIRROR" \
        >"$WORK/debootstrap-$suite.log" 2>&1; then
        tail -n 20 "$WORK/debootstrap-$suite.log" >&2
        die "debootstrap failed (log: $WORK/debootstrap-$suite.log)"
    fi
    [[ -z "$hook" ]] || "$hook" "$root"
    rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
        "$root"/usr/share/doc/* "$root"/usr/share/man/*
    tar -C "$root" --numeric-owner -c . | "$DOCKER" import \
        --change 'ENV LANG=C.UTF-8' \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'CMD ["bash"]' - "$tag" >/dev/null
    rm -rf "$root"
}

add_extra_cas() { # a debootstrap hook: trust this machine's extra CA certificates
    local root="$1"; local -a cas
    mapfile -t cas < <(ca_files)
    (( ${#cas[@]} > 0 )) || return 0
    mkdir -p "$root/usr/local/share/ca-certificates"
    cp "${cas[@]}" "$root/usr/local/share/ca-certificates/"
    chroot "$root" update-ca-certificates >/dev/null
}

build_jre() {
    debootstrap_import "$1" "$JRE_SUITE" "$JRE_PACKAGE"
}

build_python() {
    debootstrap_import "$1" "$PYTHON_SUITE" "python3,python3-venv,ca-certificates" add_extra_cas
}

maven_artifacts() { # copy the local stack's artifacts from ~/.m2 (Maven fetches what is missing)
    local out="$WORK/maven"
    if [[ -f "$out/stamp" && "$(cat "$out/stamp")" == "$(sha256sum "$POM")" ]]; then return 0; fi
    command -v mvn >/dev/null 2>&1 || die "Maven ('mvn') is needed to copy the Kafka and Apicurio artifacts"
    rm -rf "$out"; mkdir -p "$out"
    local -a goals=(dependency:copy-dependencies@kafka-libs dependency:copy@apicurio)
    if ! mvn -B -q -o -f "$POM" "-Drun.dir=$out" "${goals[@]}" >"$WORK/maven.log" 2>&1; then
        log "not everything is in ~/.m2 yet: letting Maven fetch it"
        mvn -B -q -f "$POM" "-Drun.dir=$out" "${goals[@]}" >"$WORK/maven.log" 2>&1 \
            || { tail -n 20 "$WORK/maven.log" >&2; die "Maven failed (log: $WORK/maven.log)"; }
    fi
    rm -rf "$out/maven-target"
    sha256sum "$POM" >"$out/stamp"
}

docker_build() { # docker_build <tag> <dockerfile> <context dir> [build args...]
    local tag="$1" dockerfile="$2" context="$3"; shift 3
    "$DOCKER" build -q --network host --label "dev.streamflow.inputs=${tag##*[:-]}" \
        -f "$dockerfile" -t "$tag" "$@" "$context" >/dev/null
}

build_kafka() {
    maven_artifacts
    local ctx="$WORK/kafka-context"
    rm -rf "$ctx"; mkdir -p "$ctx"
    cp -al "$WORK/maven/kafka-libs" "$ctx/libs"
    cp "$HERE/kafka/entrypoint.sh" "$ctx/"
    docker_build "$1" "$HERE/kafka/Dockerfile" "$ctx" --build-arg "BASE=$(jre_tag)" \
        --build-arg "KAFKA_VERSION=$KAFKA_VERSION"
    rm -rf "$ctx"
}

build_registry() {
    maven_artifacts
    local ctx="$WORK/registry-context"
    rm -rf "$ctx"; mkdir -p "$ctx"
    cp -l "$WORK/maven/downloads/apicurio-registry-app-$APICURIO_VERSION-all.tar.gz" "$ctx/app.tar.gz"
    docker_build "$1" "$HERE/registry/Dockerfile" "$ctx" --build-arg "BASE=$(jre_tag)" \
        --build-arg "APICURIO_VERSION=$APICURIO_VERSION"
    rm -rf "$ctx"
}

build_app() { # the context is exactly app_files (the classic builder ignores Dockerfile.dockerignore)
    local tag="$1"
    need_assets
    (cd "$REPO_ROOT" && app_files | tar -c -T - \
        | "$DOCKER" build -q --network host --label "dev.streamflow.inputs=${tag##*:}" \
            -f deploy/Dockerfile -t "$tag" --build-arg "BASE=$(python_tag)" - >/dev/null)
}

ensure() { # ensure <name>: build unless its tag exists, then tag it <repository>:local too
    local name="$1" tag t0
    case "$name" in
        kafka|registry) ensure jre ;;
        app) ensure python ;;
    esac
    t0=$SECONDS
    tag="$("${name}_tag")"
    if have_image "$tag"; then
        log "$name: $tag is up to date"
    else
        mkdir -p "$WORK"
        log "$name: building $tag ..."
        "build_$name" "$tag"
        log "$name: built $tag in $(( SECONDS - t0 ))s"
    fi
    "$DOCKER" tag "$tag" "${tag%%:*}:local"
    local old # other builds of this image (older inputs): only the current one is kept
    for old in $("$DOCKER" image ls --format '{{.Repository}}:{{.Tag}}' "${tag%%:*}"); do
        [[ "$old" == "$tag" || "$old" == "${tag%%:*}:local" ]] || "$DOCKER" rmi "$old" >/dev/null
    done
}

cmd_tags() {
    printf 'STREAMFLOW_IMAGE_JRE=%s\n' "$(jre_tag)"
    printf 'STREAMFLOW_IMAGE_PYTHON=%s\n' "$(python_tag)"
    printf 'STREAMFLOW_IMAGE_KAFKA=%s\n' "$(kafka_tag)"
    printf 'STREAMFLOW_IMAGE_REGISTRY=%s\n' "$(registry_tag)"
    printf 'STREAMFLOW_IMAGE_APP=%s\n' "$(app_tag)"
}

main() {
    local -a targets=("$@")
    (( ${#targets[@]} > 0 )) || targets=(all)
    local target
    for target in "${targets[@]}"; do
        case "$target" in
            all) ensure kafka; ensure registry; ensure app ;;
            jre|python|kafka|registry|app) ensure "$target" ;;
            tags) cmd_tags ;;
            app-files) need_assets; app_files ;;
            *) sed -n '2,22p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
        esac
    done
}

main "$@"
