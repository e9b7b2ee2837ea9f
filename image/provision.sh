#!/bin/bash
# Provision a calcfleet server, the same way on both targets: inside the local
# root filesystem (chroot, from rootfs.sh) and on the AMI's build instance (over
# Packer's SSH). Reads the payload laid beside it by the bake: the calcfleet
# wheel, files/ (unit, configuration, signal step) and overlay/ (extra files a
# bake may lay over the result, e.g. a faulty configuration for a test).
# Environment: TARGET=local|aws; CALCFLEET_APT_ARCHIVES and PIP_CACHE_DIR name
# caches that outlive the bake (local only).
set -euo pipefail

payload=$(cd "$(dirname "$0")" && pwd)
target=${TARGET:?TARGET must be local or aws}
export DEBIAN_FRONTEND=noninteractive

runtime_packages=(python3 python3-venv systemd systemd-sysv ca-certificates iproute2 procps)
if [[ "$target" == aws ]]; then
    # The stack's UserData reads IMDSv2 with curl.
    runtime_packages+=(curl)
fi
# systemd-python has no wheel on PyPI: it compiles against libsystemd. These
# are needed for that build only and leave the image before it is kept.
build_packages=(gcc libc6-dev pkg-config libsystemd-dev python3-dev)

apt_options=()
if [[ -n "${CALCFLEET_APT_ARCHIVES:-}" ]]; then
    apt_options=(-o "Dir::Cache::Archives=${CALCFLEET_APT_ARCHIVES}")
fi

echo "provision - installing packages"
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${apt_options[@]}" \
    "${runtime_packages[@]}" "${build_packages[@]}"

echo "provision - creating the calcfleet system user"
if ! getent passwd calcfleet >/dev/null; then
    useradd --system --user-group --home-dir /nonexistent --no-create-home \
        --shell /usr/sbin/nologin calcfleet
fi

echo "provision - installing calcfleet into /opt/calcfleet"
python3 -m venv /opt/calcfleet
# --use-pep517 builds systemd-python into a wheel, which pip's cache keeps
# for the next local bake (the legacy `setup.py install` path caches nothing).
/opt/calcfleet/bin/pip install --quiet --no-input --disable-pip-version-check \
    --use-pep517 "$payload"/calcfleet-*.whl

echo "provision - laying down the unit and its configuration"
install -m 0644 "$payload/files/calcfleet.service" /etc/systemd/system/calcfleet.service
install -d -m 0755 /etc/calcfleet
install -m 0644 "$payload/files/calcfleet.toml" /etc/calcfleet/calcfleet.toml
if [[ "$target" == aws ]]; then
    # The CloudFormation signal exists only on AMIs: a local instance has no
    # stack to tell, and the local fleet reads health itself.
    install -d -m 0755 /opt/calcfleet/libexec
    install -m 0755 "$payload/files/calcfleet-signal" /opt/calcfleet/libexec/calcfleet-signal
    install -m 0644 "$payload/files/calcfleet-signal.service" \
        /etc/systemd/system/calcfleet-signal.service
fi
if [[ -d "$payload/overlay" ]]; then
    echo "provision - laying the overlay over the image"
    cp -a "$payload/overlay/." /
fi

echo "provision - enabling units"
# calcfleet-signal.service stays disabled: the stack's UserData starts it.
systemctl enable systemd-networkd.service calcfleet.service

echo "provision - removing what a server must not carry"
apt-get purge -y -qq --auto-remove "${build_packages[@]}" cpp binutils
apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /root/.cache
# Every instance must make its own machine id at first boot.
truncate -s 0 /etc/machine-id
rm -f /var/lib/dbus/machine-id
echo "provision - done"
