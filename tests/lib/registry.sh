# tests/lib/registry.sh - sourced after harness.sh by the pull tests: a local registry world.
#
# Debian's docker-registry (distribution 2.8) runs as the unprivileged test user on loopback
# only, in three flavours: plain HTTP, HTTPS with a test CA, HTTPS with htpasswd Basic auth (no
# token server, so the registry answers 401 with a Basic challenge). Images are pushed with
# skopeo (as root, from OCI layouts this file or mkimage.py builds). Every registry started here
# is stopped when the test file exits.
#
#   reg_start http|https|auth   -> REG (host:port), REG_DIR (storage), REG_LOG (stderr, access
#                                  log included), REG_PID; call again for another registry.
#   reg_push LAYOUT_DIR TAG REG REPO:TAG [skopeo args]   push one image (or an index with --all)
#   reg_manifest_digest REG REPO:TAG                    the digest the registry serves
#   reg_blob_file REG_DIR DIGEST                        the file the registry serves a blob from
#   layout_from_tar TAR DIR                             untar an OCI layout (mkimage.py output)
# TLS: REG_CA is the test CA (pass it as SSL_CERT_FILE); auth: REG_USER / REG_PASS.

REG_PIDS=""
REG_USER=mltest-user
REG_PASS=s3cret-pass
REG_CA=$T_TMP/tls/ca.crt
REG_TOOLS=$T_TMP/regtools
mkdir -p "$REG_TOOLS"

reg_stop_all() {
	for p in $REG_PIDS; do kill "$p" 2>/dev/null; done
	for p in $REG_PIDS; do
		for _ in $(seq 1 20); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$p" 2>/dev/null
	done
	REG_PIDS=""
}
trap 'reg_stop_all; rm -rf "$T_TMP"' EXIT

# free_port: a TCP port nobody listens on right now (the kernel picks it).
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# reg_tls_world: a CA and a server certificate for 127.0.0.1 and localhost (once per file).
reg_tls_world() {
	[ -f "$T_TMP/tls/server.crt" ] && return 0
	d=$T_TMP/tls
	mkdir -p "$d"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
		-subj "/CN=matchlock test CA" -keyout "$d/ca.key" -out "$d/ca.crt" \
		-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null || return 1
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=localhost" \
		-keyout "$d/server.key" -out "$d/server.csr" 2>/dev/null || return 1
	printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$d/ext"
	openssl x509 -req -in "$d/server.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
		-days 2 -extfile "$d/ext" -out "$d/server.crt" 2>/dev/null || return 1
	chmod 0755 "$d" && chmod 0644 "$d"/*
}

# reg_htpasswd FILE: a bcrypt line for REG_USER (distribution accepts bcrypt only).
reg_htpasswd() {
	if command -v htpasswd >/dev/null; then
		htpasswd -Bbn "$REG_USER" "$REG_PASS" | grep . >"$1"
	else
		/usr/bin/python3 -W ignore -c 'import crypt,sys; print(sys.argv[1] + ":" + crypt.crypt(sys.argv[2], crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1 << 5)))' \
			"$REG_USER" "$REG_PASS" >"$1"
	fi
	chmod 0644 "$1"
}

reg_start() {
	mode=$1
	port=$(free_port)
	dir=$(mktemp -d "$T_TMP/registry.XXXXXX")
	mkdir -p "$dir/storage"
	{
		echo "version: 0.1"
		echo "log: {level: warn, accesslog: {disabled: false}}"
		echo "storage: {filesystem: {rootdirectory: $dir/storage}, delete: {enabled: true}, maintenance: {uploadpurging: {enabled: false}}}"
		echo "http:"
		echo "  addr: 127.0.0.1:$port"
		echo "  secret: matchlock-test-secret"
		if [ "$mode" != http ]; then
			reg_tls_world || { echo "registry.sh: cannot make the test CA" >&2; return 1; }
			echo "  tls: {certificate: $T_TMP/tls/server.crt, key: $T_TMP/tls/server.key}"
		fi
		if [ "$mode" = auth ]; then
			reg_htpasswd "$dir/htpasswd"
			echo "auth: {htpasswd: {realm: matchlock-test, path: $dir/htpasswd}}"
		fi
	} >"$dir/config.yml"
	chown -R "$ML_USER:$ML_USER" "$dir"
	chmod 0755 "$dir"
	setpriv --reuid="$ML_USER" --regid="$ML_USER" --init-groups --inh-caps=-all \
		env -i PATH=/usr/bin:/bin HOME="$dir" /usr/bin/docker-registry serve "$dir/config.yml" \
		>"$dir/log" 2>&1 &
	REG_PID=$!
	REG_PIDS="$REG_PIDS $REG_PID"
	scheme=http
	[ "$mode" = http ] || scheme=https
	for _ in $(seq 1 100); do
		code=$(curl -s -k -o /dev/null -w '%{http_code}' "$scheme://127.0.0.1:$port/v2/" 2>/dev/null)
		case "$code" in 200|401) break ;; esac
		sleep 0.1
	done
	case "$code" in 200|401) ;; *) echo "registry.sh: $mode registry on port $port did not come up: $(tail -3 "$dir/log")" >&2; return 1 ;; esac
	REG=127.0.0.1:$port
	REG_DIR=$dir/storage
	REG_LOG=$dir/log
}

# reg_push LAYOUT_DIR LAYOUT_TAG REG REPO:TAG [extra skopeo args...]
reg_push() {
	layout=$1 ltag=$2 reg=$3 dest=$4
	shift 4
	skopeo copy -q --dest-tls-verify=false "$@" "oci:$layout:$ltag" "docker://$reg/$dest" >"$T_TMP/push.log" 2>&1 \
		|| { echo "registry.sh: push of $dest failed: $(tail -3 "$T_TMP/push.log")" >&2; return 1; }
}

# reg_manifest_digest REG REPO:TAG [curl args]: the Docker-Content-Digest the registry serves
# (HTTPS first, then plain HTTP).
reg_manifest_digest() {
	_reg=$1 _repo=${2%:*} _tag=${2##*:}
	shift 2
	for _scheme in https http; do
		_d=$(curl -s -k "$@" -o /dev/null -D - \
			-H 'Accept: application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json' \
			"$_scheme://$_reg/v2/$_repo/manifests/$_tag" 2>/dev/null | tr -d '\r' | awk -F': ' 'tolower($1)=="docker-content-digest" {print $2}')
		[ -n "$_d" ] && { echo "$_d"; return 0; }
	done
	return 1
}

# reg_blob_file REG_DIR sha256:HEX: where the filesystem driver keeps that blob's bytes.
reg_blob_file() {
	hex=${2#sha256:}
	echo "$1/docker/registry/v2/blobs/sha256/$(echo "$hex" | cut -c1-2)/$hex/data"
}

# reg_blob_gets LOG sha256:HEX: how many GETs of that blob the access log shows.
reg_blob_gets() {
	grep -c "\"GET /v2/[^ ]*/blobs/$2 " "$1" || true
}

# layout_from_tar TAR DIR: an OCI layout directory (skopeo's oci: transport wants a directory).
layout_from_tar() {
	rm -rf "$2" && mkdir -p "$2" && tar -xf "$1" -C "$2"
}

# default_layout DIR: the embedded busybox image as an OCI layout; its ref name is printed.
default_layout() {
	layout_from_tar "$ML_PREFIX/lib/matchlock/images/default.tar" "$1"
	python3 -c 'import json,sys; m=json.load(open(sys.argv[1]))["manifests"][0]; print(m.get("annotations",{}).get("org.opencontainers.image.ref.name",""))' "$1/index.json"
}

# blob_usage DIR: on-disk usage (st_blocks * 512) of every file under DIR.
blob_usage() {
	find "$1" -type f -printf '%b\n' 2>/dev/null | awk '{s += $1 * 512} END {print s + 0}'
}

# store_listing CACHE: names and sizes of every file in the image store (for "untouched").
store_listing() {
	(cd "$1/matchlock/images" 2>/dev/null && find . -type f ! -name '*.lock' -printf '%p %s\n' | sort)
}

# strip_pull_lines FILE: stderr of run/pull without the pull's progress lines.
strip_pull_lines() {
	grep -v -E '^(Pulling |Tagged: |Digest: |Size: |Built rootfs |Importing )' "$1" | grep . || true
}

# reg_helper OUTFILE regtools.py-ARGS...: a loopback helper (slow proxy, fake registry) as the
# test user, stopped with the registries; waits until it listens. Sets HELPER_PID.
reg_helper() {
	out=$1
	shift
	setpriv --reuid="$ML_USER" --regid="$ML_USER" --init-groups --inh-caps=-all \
		env -i PATH=/usr/bin:/bin /usr/bin/python3 "$REPO/tests/lib/regtools.py" "$@" >"$out" 2>&1 &
	HELPER_PID=$!
	REG_PIDS="$REG_PIDS $HELPER_PID"
	for _ in $(seq 1 50); do grep -q ready "$out" 2>/dev/null && return 0; sleep 0.1; done
	echo "registry.sh: helper $1 did not start: $(cat "$out")" >&2
	return 1
}

# mkimage SCENARIO NAME: tests/lib/mkimage.py output as an OCI layout dir $T_TMP/img-NAME.
mkimage() {
	python3 "$REPO/tests/lib/mkimage.py" "$1" "$ML_PREFIX/lib/matchlock/images/default.tar" "$T_TMP/img-$2.tar" &&
		layout_from_tar "$T_TMP/img-$2.tar" "$T_TMP/img-$2" && rm -f "$T_TMP/img-$2.tar"
}

# check_fails DESC WANT_REGEX STDERR_FILE RC: exit 1 and exactly one stderr line matching
# WANT_REGEX (case-insensitive extended regex), pull progress lines aside.
check_fails() {
	check_eq "$1: exit 1" 1 "$4"
	strip_pull_lines "$3" >"$3.only"
	if grep -qiE "$2" "$3.only"; then ok "$1: says /$2/"; else fail "$1: wanted /$2/ in [$(head -c 400 "$3.only")]"; fi
	check_one_line "$1: one line" "$3.only"
}

# ml_with_hosts HOSTSFILE ARGS...: `ml` in a private mount namespace whose /etc/hosts is
# HOSTSFILE, so a test can give a loopback registry a non-loopback name (nothing leaves
# loopback). The bind mount needs root; matchlock itself still runs as the test user.
ml_with_hosts() {
	_hosts=$1
	shift
	# shellcheck disable=SC2086
	unshare --mount --propagation private sh -c 'mount --bind "$0" /etc/hosts && exec "$@"' "$_hosts" \
		setpriv --reuid="$ML_USER" --regid="$ML_USER" --init-groups --inh-caps=-all \
		env -i PATH=/usr/local/bin:/usr/bin:/bin HOME="$ML_HOME" XDG_CACHE_HOME="$ML_CACHE" ${ML_ENV:-} "$ML_BIN" "$@"
}
