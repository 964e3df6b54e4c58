#!/bin/sh
# The wasm-cni node installer: the entrypoint of the image built by
# deploy/Containerfile, run on every node by deploy/daemonset.yaml.
#
#   wasm-cni-entrypoint            install, then stay up until SIGTERM
#   wasm-cni-entrypoint uninstall  undo the install, then stay up (deploy/uninstall.yaml)
#
# install:
#   1. NODE_NAME (downward API, spec.nodeName) names this node; its pod CIDRs are
#      read from the Kubernetes API with the pod's service-account token:
#      .spec.podCIDRs, else .spec.podCIDR (one IPv4 and/or one IPv6 range).
#   2. config.json and policy.json found in $WASM_CNI_CONFIG_SOURCE (the optional
#      ConfigMap wasm-cni-config) are validated with the wasm-cni binary, then
#      copied to the node's /etc/wasm-cni.
#   3. `wasm-cni install` copies the binary, the plugin symlinks and any extra
#      components to the node, precompiles every component into the node's cache,
#      and writes the conflist with one host-local range per pod CIDR.
#   4. It writes $WASM_CNI_READY_FILE (the readiness probe) and sleeps.
#
# On SIGTERM it exits 0 WITHOUT uninstalling. A CNI plugin must outlive its
# installer: during a rolling update of the DaemonSet, or when the pod is evicted,
# the node's containers keep running and the runtime still calls the plugin for
# every new pod and for every DEL. Removal is a separate, deliberate step
# (deploy/uninstall.yaml).
#
# Environment (defaults in brackets):
#   NODE_NAME                this node (required for install)
#   WASM_CNI_BIN             the wasm-cni binary [/usr/local/bin/wasm-cni]
#   WASM_CNI_HOST_ROOT       where the node's directories are mounted [/host]
#   WASM_CNI_API_SERVER      API base URL [https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT]
#   WASM_CNI_TOKEN_FILE      bearer token [/var/run/secrets/kubernetes.io/serviceaccount/token]
#   WASM_CNI_CA_FILE         CA for an https API [/var/run/secrets/kubernetes.io/serviceaccount/ca.crt]
#   WASM_CNI_CIDR_WAIT       seconds to wait for the node's pod CIDR to be assigned [60]
#   WASM_CNI_CONFIG_SOURCE   directory with config.json / policy.json for the node [/etc/wasm-cni-config]
#   WASM_CNI_COMPONENTS      directory of extra <type>.wasm components [/usr/lib/wasm-cni/components]
#   WASM_CNI_READY_FILE      written once installed [/tmp/wasm-cni-ready]
#   WASM_CNI_NETWORK         --network NAME   [wasm-cni's default: wasm-cni]
#   WASM_CNI_BRIDGE          --bridge NAME    [cni0]
#   WASM_CNI_IP_MASQ         true: --ip-masq
#   WASM_CNI_MTU             --mtu N
#   WASM_CNI_CONFLIST_NAME   --conflist-name FILE [10-wasm-cni.conflist]
#   WASM_CNI_CHAIN           native plugins appended to the chain, e.g. "portmap bandwidth"
#   WASM_CNI_REPLACE         true: --replace (replace, and back up, reference plugins of the same names)
set -eu
# No pathname expansion: CIDRs and names from outside are split, never globbed.
set -f

me=wasm-cni-entrypoint
log() { printf '%s: %s\n' "$me" "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}
is_true() {
	case "${1:-}" in
	true | True | TRUE | 1 | yes | Yes | YES | on) return 0 ;;
	*) return 1 ;;
	esac
}

: "${WASM_CNI_BIN:=/usr/local/bin/wasm-cni}"
: "${WASM_CNI_HOST_ROOT:=/host}"
: "${WASM_CNI_TOKEN_FILE:=/var/run/secrets/kubernetes.io/serviceaccount/token}"
: "${WASM_CNI_CA_FILE:=/var/run/secrets/kubernetes.io/serviceaccount/ca.crt}"
: "${WASM_CNI_CIDR_WAIT:=60}"
: "${WASM_CNI_CONFIG_SOURCE:=/etc/wasm-cni-config}"
: "${WASM_CNI_COMPONENTS:=/usr/lib/wasm-cni/components}"
: "${WASM_CNI_READY_FILE:=/tmp/wasm-cni-ready}"

# The node's directories, as mounted by the DaemonSet (hostPath volumes).
host=${WASM_CNI_HOST_ROOT%/}
bin_dir=$host/opt/cni/bin
component_dir=$host/opt/cni/wasm
conf_dir=$host/etc/cni/net.d
cache_dir=$host/var/cache/wasm-cni
settings_dir=$host/etc/wasm-cni

work=
cleanup() {
	if [ -n "$work" ]; then rm -rf "$work"; fi
}
trap cleanup EXIT
# A SIGTERM while installing takes effect once the running command is done (the
# shell runs traps between commands), so an install is never cut in half.
trap 'log "terminated before the install finished"; exit 143' TERM INT

[ -x "$WASM_CNI_BIN" ] || die "no wasm-cni binary at $WASM_CNI_BIN (WASM_CNI_BIN)"
case "$WASM_CNI_CIDR_WAIT" in
'' | *[!0-9]*) die "WASM_CNI_CIDR_WAIT must be a number of seconds, not '$WASM_CNI_CIDR_WAIT'" ;;
esac
work=$(mktemp -d)

# Stay up (the DaemonSet pod is Ready while this runs) until SIGTERM, then exit 0
# leaving everything installed.
stay_up() {
	mkdir -p "$(dirname "$WASM_CNI_READY_FILE")"
	: >"$WASM_CNI_READY_FILE"
	log "$1; sleeping until SIGTERM (which leaves everything in place)"
	sleeper=
	trap 'log "SIGTERM: exiting; wasm-cni stays installed on the node"
	      if [ -n "$sleeper" ]; then kill "$sleeper" 2>/dev/null || true; fi
	      rm -f "$WASM_CNI_READY_FILE"
	      exit 0' TERM INT
	while :; do
		sleep 86400 &
		sleeper=$!
		wait "$sleeper" || true
	done
}

# The API base URL, without a trailing slash.
api_server() {
	if [ -n "${WASM_CNI_API_SERVER:-}" ]; then
		api=${WASM_CNI_API_SERVER%/}
		return
	fi
	[ -n "${KUBERNETES_SERVICE_HOST:-}" ] ||
		die "KUBERNETES_SERVICE_HOST is not set (not running in a pod?); set WASM_CNI_API_SERVER to the API server's URL"
	h=$KUBERNETES_SERVICE_HOST
	case "$h" in *:*) h="[$h]" ;; esac
	api="https://$h:${KUBERNETES_SERVICE_PORT:-443}"
}

# GET the node object; sets $cidrs (one a line, possibly empty). Dies on any API
# error.
fetch_cidrs() {
	url=$api/api/v1/nodes/$NODE_NAME
	[ -r "$WASM_CNI_TOKEN_FILE" ] && token=$(cat "$WASM_CNI_TOKEN_FILE") && [ -n "$token" ] ||
		die "cannot read the service-account token $WASM_CNI_TOKEN_FILE (WASM_CNI_TOKEN_FILE; automountServiceAccountToken must not be false)"
	# The token goes to curl in a header file, never on a command line.
	(
		umask 077
		printf 'Authorization: Bearer %s\n' "$token" >"$work/auth"
	)
	tls=
	case "$api" in
	https://*)
		[ -r "$WASM_CNI_CA_FILE" ] || die "cannot read the API server's CA $WASM_CNI_CA_FILE (WASM_CNI_CA_FILE)"
		tls=--cacert
		;;
	esac
	rm -f "$work/node.json"
	if ! status=$(curl -sS --max-time 30 --retry 5 --retry-connrefused --retry-delay 2 \
		-H @"$work/auth" -H 'Accept: application/json' \
		${tls:+"$tls"} ${tls:+"$WASM_CNI_CA_FILE"} \
		-o "$work/node.json" -w '%{http_code}' "$url" 2>"$work/curl.err"); then
		die "cannot reach the Kubernetes API (GET $url): $(cat "$work/curl.err")"
	fi
	rm -f "$work/auth"
	body=$(tr '\n' ' ' <"$work/node.json" 2>/dev/null | cut -c1-400 || true)
	case "$status" in
	200) ;;
	401 | 403)
		die "the Kubernetes API refused GET $url (HTTP $status): the pod's service account needs 'get' on nodes (ClusterRole wasm-cni in deploy/daemonset.yaml): $body"
		;;
	404) die "node $NODE_NAME not found (GET $url: HTTP 404): $body" ;;
	*) die "GET $url: HTTP $status: $body" ;;
	esac
	if ! cidrs=$(jq -r '
		if type != "object" or .kind != "Node" then
			error("not a Node object")
		else . end
		| (.spec.podCIDRs // []) as $many
		| (if ($many | length) > 0 then $many else [.spec.podCIDR // empty] end)
		| .[]
		| if type == "string" then . else error("a pod CIDR is not a string") end
		| select(. != "")' "$work/node.json" 2>"$work/jq.err"); then
		die "cannot read node $NODE_NAME from the API's answer ($(cat "$work/jq.err")): $body"
	fi
}

# This node's pod CIDRs into $cidrs, waiting up to WASM_CNI_CIDR_WAIT seconds for
# the controller manager to assign them to a node that has just registered.
node_cidrs() {
	[ -n "${NODE_NAME:-}" ] ||
		die "NODE_NAME is not set: the DaemonSet sets it from the downward API (fieldRef spec.nodeName)"
	case "$NODE_NAME" in
	*[!a-z0-9.-]*) die "NODE_NAME '$NODE_NAME' is not a Kubernetes node name" ;;
	esac
	api_server
	waited=0
	while :; do
		fetch_cidrs
		[ -z "$cidrs" ] || break
		if [ "$waited" -ge "$WASM_CNI_CIDR_WAIT" ]; then
			die "node $NODE_NAME has no pod CIDR (.spec.podCIDRs and .spec.podCIDR are empty), so there is no range for host-local. Kubernetes assigns one per node when kube-controller-manager runs with --allocate-node-cidrs=true and --cluster-cidr=<range> (kubeadm init --pod-network-cidr=<range>); waited ${waited}s (WASM_CNI_CIDR_WAIT)"
		fi
		log "node $NODE_NAME has no pod CIDR yet; asking again in 2s"
		sleep 2
		waited=$((waited + 2))
	done
	for c in $cidrs; do
		case "$c" in
		*/*) ;;
		*) die "node $NODE_NAME: pod CIDR '$c' is not a CIDR" ;;
		esac
		case "$c" in
		*[!0-9A-Fa-f.:/]*) die "node $NODE_NAME: pod CIDR '$c' is not a CIDR" ;;
		esac
	done
}

# Validate, then copy, config.json and policy.json from the ConfigMap to the node's
# /etc/wasm-cni. Files the ConfigMap does not carry are left as they are on the node.
install_settings() {
	src=$WASM_CNI_CONFIG_SOURCE
	found=
	if [ -f "$src/config.json" ]; then
		WASM_CNI_CONFIG="$src/config.json" "$WASM_CNI_BIN" version >/dev/null 2>"$work/check.err" ||
			die "$src/config.json (ConfigMap wasm-cni-config) is not valid wasm-cni settings: $(cat "$work/check.err")"
		found="$found config.json"
	fi
	if [ -f "$src/policy.json" ]; then
		"$WASM_CNI_BIN" policy check "$src/policy.json" >/dev/null 2>"$work/check.err" ||
			die "$src/policy.json (ConfigMap wasm-cni-config) is not a valid policy: $(cat "$work/check.err")"
		found="$found policy.json"
	fi
	[ -n "$found" ] || return 0
	mkdir -p "$settings_dir"
	for f in $found; do
		# Same directory, then rename: the node never sees half a file.
		cp "$src/$f" "$settings_dir/.$f.tmp"
		chmod 0644 "$settings_dir/.$f.tmp"
		mv -f "$settings_dir/.$f.tmp" "$settings_dir/$f"
		log "installed $settings_dir/$f from $src/$f"
	done
}

do_install() {
	node_cidrs
	install_settings
	# Paths are the node's; --root says where the node is mounted, so the
	# install record names node paths and `wasm-cni uninstall` also works on the
	# node itself.
	set -- install \
		--root "$host" \
		--bin-dir /opt/cni/bin \
		--component-dir /opt/cni/wasm \
		--cache-dir /var/cache/wasm-cni \
		--conf-dir /etc/cni/net.d
	for c in $cidrs; do
		set -- "$@" --subnet "$c"
	done
	if [ -n "${WASM_CNI_NETWORK:-}" ]; then set -- "$@" --network "$WASM_CNI_NETWORK"; fi
	if [ -n "${WASM_CNI_BRIDGE:-}" ]; then set -- "$@" --bridge "$WASM_CNI_BRIDGE"; fi
	if is_true "${WASM_CNI_IP_MASQ:-}"; then set -- "$@" --ip-masq; fi
	if [ -n "${WASM_CNI_MTU:-}" ]; then set -- "$@" --mtu "$WASM_CNI_MTU"; fi
	if [ -n "${WASM_CNI_CONFLIST_NAME:-}" ]; then
		set -- "$@" --conflist-name "$WASM_CNI_CONFLIST_NAME"
	fi
	for t in $(printf '%s' "${WASM_CNI_CHAIN:-}" | tr ',' ' '); do
		case "$t" in
		*[!A-Za-z0-9._-]*) die "WASM_CNI_CHAIN: '$t' is not a plugin type" ;;
		esac
		set -- "$@" --chain "$t"
	done
	if is_true "${WASM_CNI_REPLACE:-}"; then set -- "$@" --replace; fi
	set +f
	for f in "$WASM_CNI_COMPONENTS"/*.wasm; do
		if [ -f "$f" ]; then set -- "$@" --components "$WASM_CNI_COMPONENTS"; fi
		break
	done
	set -f

	log "node $NODE_NAME, pod CIDRs: $(echo $cidrs)"
	log "running: $WASM_CNI_BIN $*"
	"$WASM_CNI_BIN" "$@" || die "wasm-cni install failed (exit status $?)"
	stay_up "installed on node $NODE_NAME"
}

# uninstall finds everything install wrote (components, cache entries, conflist,
# backed-up reference plugins) in the install record it keeps in the bin
# directory, as node paths found under --root.
do_uninstall() {
	log "running: $WASM_CNI_BIN uninstall --root $host --bin-dir /opt/cni/bin (node ${NODE_NAME:-?})"
	"$WASM_CNI_BIN" uninstall --root "$host" --bin-dir /opt/cni/bin ||
		die "wasm-cni uninstall failed (exit status $?)"
	stay_up "uninstalled from node ${NODE_NAME:-?}"
}

case "${1:-install}" in
install) do_install ;;
uninstall) do_uninstall ;;
*) die "usage: $me [install|uninstall]" ;;
esac
