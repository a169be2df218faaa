#!/usr/bin/env bash
# make test-ipvs: run package ipvs's tests against a real IPVS inside a
# throwaway qemu VM on Debian's kernel (the build machines have no ip_vs).
#
# Needs (Debian packages): linux-image-amd64, qemu-system-x86, busybox-static,
# cpio; ipvsadm optionally (its output is then compared with ipvs.Format).
# Nothing is downloaded. Uses KVM when /dev/kvm is usable, TCG otherwise.
#
# Environment:
#   HALB_VM_KERNEL   kernel image (default: newest /boot/vmlinuz-*)
#   HALB_VM_TIMEOUT  seconds before the VM is killed (default 300)
#   HALB_VM_RUN      go test -run pattern inside the VM (default: all tests)
#   HALB_VM_KEEP=1   keep the work directory (initramfs, console log)
#   HALB_VM_TESTBIN  a test binary built already (CGO_ENABLED=0 go test -c ./ipvs)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
timeout_s=${HALB_VM_TIMEOUT:-300}
# The tests stop (with a goroutine dump naming the call that hung) well before the VM is killed.
test_timeout_s=$(( timeout_s > 120 ? timeout_s - 60 : timeout_s / 2 ))
run_pattern=${HALB_VM_RUN:-.}
marker=HALB-IPVS-VM-RESULT

die() { echo "test-ipvs: $*" >&2; exit 1; }

kernel=${HALB_VM_KERNEL:-$(ls -1v /boot/vmlinuz-* 2>/dev/null | tail -n1)}
[ -n "$kernel" ] || die "no kernel image in /boot (apt-get install linux-image-amd64)"
[ -r "$kernel" ] || die "cannot read $kernel (Debian installs it mode 0600: run as root, or chmod 0644 it)"
kver=${kernel##*/vmlinuz-}
moddir=/lib/modules/$kver
[ -r "$moddir/modules.dep" ] || die "no $moddir/modules.dep for kernel $kver"
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 missing (apt-get install qemu-system-x86)"
busybox=$(command -v busybox || true)
[ -n "$busybox" ] && ! ldd "$busybox" >/dev/null 2>&1 || die "a static busybox is needed (apt-get install busybox-static)"
command -v cpio >/dev/null || die "cpio missing (apt-get install cpio)"

work=$(mktemp -d /tmp/halb-ipvs-vm.XXXXXX)
cleanup() { if [ "${HALB_VM_KEEP:-}" = 1 ]; then echo "test-ipvs: kept $work"; else rm -rf "$work"; fi; }
trap cleanup EXIT
root=$work/root
mkdir -p "$root"/{bin,sbin,usr/sbin,proc,sys,dev,tmp,run,modules}

start=$(date +%s)

# 1. The test binary, static.
if [ -n "${HALB_VM_TESTBIN:-}" ]; then
	cp "$HALB_VM_TESTBIN" "$root/ipvs.test"
else
	echo "test-ipvs: building the test binary"
	(cd "$repo" && CGO_ENABLED=0 go test -c -o "$root/ipvs.test" ./ipvs)
fi
built=$(date +%s)

# 2. Modules with their dependencies, in load order: modules.dep lists a
#    module's dependencies (deepest last); modules.softdep adds "pre:" modules
#    a module asks for at init (libcrc32c needs a crc32c, say), named directly
#    or through modules.alias (preferring the _generic implementation, which
#    needs no CPU feature under TCG).
wanted="ip_vs ip_vs_rr ip_vs_wrr ip_vs_lc ip_vs_wlc ip_vs_lblc ip_vs_lblcr ip_vs_dh ip_vs_sh ip_vs_sed ip_vs_nq ip_vs_mh ip_vs_fo ip_vs_ovf veth bridge"
declare -A done_mod=()
order=()
modpath() { # $1: module name; prints its path relative to $moddir, or nothing if built in
	local n=${1//-/_} rel alias
	rel=$(grep -m1 -E "(^|/)($n|${n//_/-})\.ko(\.[a-z]+)?:" "$moddir/modules.dep" | cut -d: -f1) || true
	if [ -z "$rel" ]; then
		grep -qE "(^|/)($n|${n//_/-})\.ko" "$moddir/modules.builtin" 2>/dev/null && return 0
		alias=$(awk -v a="$1" '$1 == "alias" && $2 == a { print $3 }' "$moddir/modules.alias" | sort | awk '/_generic$/ { g = $0 } { f = f ? f : $0 } END { print g ? g : f }')
		[ -n "$alias" ] || die "module $1 not found for $kver"
		modpath "$alias"
		return
	fi
	echo "$rel"
}
add_module() { # $1: path relative to $moddir as in modules.dep
	local rel=$1 line deps i name pre p
	[ -n "${done_mod[$rel]:-}" ] && return
	done_mod[$rel]=1
	name=$(basename "$rel"); name=${name%%.ko*}; name=${name//-/_}
	for pre in $(awk -v m="$name" '$1 == "softdep" && $2 == m { on = 0; for (i = 3; i <= NF; i++) { if ($i == "pre:") on = 1; else if ($i == "post:") on = 0; else if (on) print $i } }' "$moddir/modules.softdep" 2>/dev/null); do
		p=$(modpath "$pre")
		[ -n "$p" ] && add_module "$p"
	done
	line=$(grep -m1 "^$rel:" "$moddir/modules.dep") || die "module $rel not in modules.dep"
	read -r -a deps <<<"${line#*:}"
	for ((i = ${#deps[@]} - 1; i >= 0; i--)); do add_module "${deps[$i]}"; done
	order+=("$rel")
}
for m in $wanted; do
	rel=$(modpath "$m")
	[ -n "$rel" ] && add_module "$rel"
done
: >"$root/modules.order"
for rel in "${order[@]}"; do
	base=$(basename "$rel")
	case $base in
	*.ko) cp "$moddir/$rel" "$root/modules/$base" ;;
	*.ko.xz) xz -dc "$moddir/$rel" >"$root/modules/${base%.xz}"; base=${base%.xz} ;;
	*.ko.zst) zstd -qdc "$moddir/$rel" >"$root/modules/${base%.zst}"; base=${base%.zst} ;;
	*.ko.gz) gzip -dc "$moddir/$rel" >"$root/modules/${base%.gz}"; base=${base%.gz} ;;
	*) die "unknown module format $base" ;;
	esac
	echo "$base" >>"$root/modules.order"
done

# 3. busybox, and ipvsadm with its libraries when installed.
cp "$busybox" "$root/bin/busybox"
if ipvsadm=$(command -v ipvsadm); then
	cp "$ipvsadm" "$root/usr/sbin/ipvsadm"
	for lib in $(ldd "$ipvsadm" | grep -oE '/[^ ]+'); do
		mkdir -p "$root$(dirname "$lib")"
		cp -L "$lib" "$root$lib"
	done
fi

# 4. /init: load modules, run the tests, print the marker, power off.
cat >"$root/init" <<EOF
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin:/sbin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
for m in \$(cat /modules.order); do insmod /modules/\$m || { echo "test-ipvs: insmod \$m failed"; dmesg | tail -n 3; }; done
echo "test-ipvs: kernel \$(uname -r), \$(wc -l </proc/modules) modules loaded"
cd /
HALB_IPVS_VM=1 TMPDIR=/tmp HOME=/tmp ./ipvs.test -test.v -test.count=1 -test.timeout=${test_timeout_s}s -test.run '$run_pattern'
rc=\$?
if [ \$rc = 0 ]; then echo "$marker: PASS"; else dmesg | tail -n 40; echo "$marker: FAIL rc=\$rc"; fi
sync
poweroff -f
EOF
chmod +x "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet) >"$work/initramfs.cpio"
echo "test-ipvs: initramfs $(du -h "$work/initramfs.cpio" | cut -f1), ${#order[@]} modules, kernel $kver"

# 5. Boot. KVM with the host's CPU model first; some nested hosts refuse it (qemu aborts at once
# with "failed to set MSR"; qemu's default model then hangs without a word): then plain emulation (TCG).
attempts=("-accel tcg")
if [ -r /dev/kvm ] && [ -w /dev/kvm ]; then attempts=("-accel kvm -cpu host" "-accel tcg"); fi
for a in "${attempts[@]}"; do
	read -r -a accel <<<"$a"
	echo "test-ipvs: booting (${accel[*]}), timeout ${timeout_s}s"
	set +e
	timeout "$timeout_s" qemu-system-x86_64 "${accel[@]}" -m 1024 -smp 1 -no-reboot \
		-display none -monitor none -serial stdio \
		-kernel "$kernel" -initrd "$work/initramfs.cpio" \
		-append "console=ttyS0 quiet loglevel=3 panic=-1" </dev/null | tee "$work/console.log"
	qrc=${PIPESTATUS[0]}
	set -e
	# Only a start-up failure (nothing on the console) moves on to the next way of booting.
	if [ "$qrc" = 0 ] || [ "$qrc" = 124 ] || grep -qa "^$marker:" "$work/console.log" || [ -s "$work/console.log" ]; then
		break
	fi
	echo "test-ipvs: qemu could not start with ${accel[*]} (exit $qrc)" >&2
done
elapsed=$(($(date +%s) - start))

if grep -qa "^$marker: PASS" "$work/console.log"; then
	echo "test-ipvs: PASS in ${elapsed}s (build $((built - start))s, VM $(($(date +%s) - built))s)"
	exit 0
fi
if [ "$qrc" = 124 ]; then
	echo "test-ipvs: FAIL: VM timed out after ${timeout_s}s" >&2
elif grep -qa "^$marker: FAIL" "$work/console.log"; then
	echo "test-ipvs: FAIL: tests failed in the VM (${elapsed}s)" >&2
else
	echo "test-ipvs: FAIL: no result marker on the console (qemu exit $qrc)" >&2
fi
exit 1
