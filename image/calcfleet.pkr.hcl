# The calcfleet server image, for both targets. `invoke bake` runs it through
# image/packer.py, which sets every variable below; run by hand only to debug.
# Written for Packer 1.6.6 (Debian's): no data sources, no required_plugins.
# Current Packer reads plugins.pkr.hcl beside it: see docs/image.md.

packer {
  required_version = ">= 1.6.6"
}

variable "version" {
  type        = string
  description = "calcfleet version installed in the image"
}

variable "commit" {
  type        = string
  description = "git commit the image was baked from"
}

variable "built_at" {
  type        = string
  description = "bake start, UTC, ISO 8601"
}

variable "inputs" {
  type        = string
  description = "digest of everything the image is made from; equal inputs, equal image"
}

variable "image_id" {
  type        = string
  description = "id of the local image being baked (local target)"
  default     = ""
}

variable "payload" {
  type        = string
  description = "directory with the wheel, provision.sh, files/ and overlay/"
}

variable "manifest" {
  type        = string
  description = "where the manifest post-processor writes"
}

variable "python" {
  type        = string
  description = "the developer venv's python, which runs the image checks"
  default     = "python3"
}

# --- local: a Debian root filesystem, booted with systemd-nspawn -------------

variable "rootfs" {
  type    = string
  default = ""
}

variable "base_tarball" {
  type    = string
  default = ""
}

variable "base_image" {
  type        = string
  description = "what the local image starts from (suite, mirror, package digest)"
  default     = ""
}

variable "suite" {
  type    = string
  default = "bookworm"
}

variable "mirror" {
  type    = string
  default = "http://deb.debian.org/debian"
}

variable "base_packages" {
  type    = string
  default = ""
}

variable "cache_dir" {
  type    = string
  default = ""
}

variable "checks_report" {
  type        = string
  description = "JUnit XML report of the image checks"
  default     = ""
}

# --- aws: an AMI -----------------------------------------------------------

variable "region" {
  type    = string
  default = "us-east-1"
}

variable "instance_type" {
  type    = string
  default = "t3.small"
}

variable "source_ami_name" {
  type        = string
  description = "name filter for the base AMI; Debian publishes debian-12-amd64-*"
  default     = "debian-12-amd64-*"
}

variable "source_ami_owner" {
  type        = string
  description = "owner of the base AMI; 136693071363 is Debian's cloud team"
  default     = "136693071363"
}

variable "ec2_endpoint" {
  type        = string
  description = "EC2 endpoint override; set only for the moto rehearsal"
  default     = ""
}

variable "skip_aws_checks" {
  type        = bool
  description = "skip the credential, region and metadata checks moto cannot answer"
  default     = false
}

locals {
  provenance = {
    "calcfleet:version"  = var.version
    "calcfleet:commit"   = var.commit
    "calcfleet:built-at" = var.built_at
    "calcfleet:inputs"   = var.inputs
    # The amazon builder fills {{ .SourceAMI }} once the filter has chosen.
    "calcfleet:base-image" = "{{ .SourceAMI }}"
  }
}

source "null" "local" {
  communicator = "none"
}

source "amazon-ebs" "aws" {
  region        = var.region
  instance_type = var.instance_type
  ami_name      = "calcfleet-${var.version}-${var.inputs}-{{timestamp}}"
  source_ami_filter {
    filters = {
      name                = var.source_ami_name
      virtualization-type = "hvm"
      root-device-type    = "ebs"
    }
    owners      = [var.source_ami_owner]
    most_recent = true
  }
  custom_endpoint_ec2        = var.ec2_endpoint
  skip_credential_validation = var.skip_aws_checks
  skip_metadata_api_check    = var.skip_aws_checks
  skip_region_validation     = var.skip_aws_checks
  # No metadata_options here: Packer 1.6.6 does not know the block. The launch
  # template in stacks/ requires IMDSv2 on the instances that run the image.
}

build {
  name    = "local"
  sources = ["source.null.local"]

  provisioner "shell-local" {
    script = "image/rootfs.sh"
    environment_vars = [
      "ROOTFS=${var.rootfs}",
      "BASE_TARBALL=${var.base_tarball}",
      "SUITE=${var.suite}",
      "MIRROR=${var.mirror}",
      "BASE_PACKAGES=${var.base_packages}",
      "PAYLOAD=${var.payload}",
      "CACHE_DIR=${var.cache_dir}",
    ]
  }

  # The checks gate the image: if one fails, Packer fails and the bake keeps
  # nothing.
  provisioner "shell-local" {
    inline = [
      "${var.python} -m image.checks --rootfs '${var.rootfs}' --version '${var.version}' --report '${var.checks_report}'",
    ]
  }

  post-processor "manifest" {
    output = var.manifest
    custom_data = merge(local.provenance, {
      "calcfleet:base-image" = var.base_image
      "calcfleet:image-id"   = var.image_id
    })
  }
}

build {
  name = "aws"

  source "source.amazon-ebs.aws" {
    ssh_username = "admin"
    tags         = merge(local.provenance, { "calcfleet:verified" = "true" })
  }

  provisioner "shell" {
    inline = ["mkdir -p /tmp/calcfleet-payload"]
  }

  # The trailing slash uploads the payload's contents, not the directory.
  provisioner "file" {
    source      = "${var.payload}/"
    destination = "/tmp/calcfleet-payload"
  }

  provisioner "shell" {
    inline = ["sudo TARGET=aws bash /tmp/calcfleet-payload/provision.sh"]
  }

  # Reboot so the checks see the service as a launched instance would.
  provisioner "shell" {
    inline            = ["sudo systemctl reboot"]
    expect_disconnect = true
  }

  # The same checks as the local image, over Packer's own SSH connection; a
  # failure stops the build before an AMI is registered.
  provisioner "shell-local" {
    pause_before = "30s"
    environment_vars = [
      "CALCFLEET_SSH_KEY=${build.SSHPrivateKey}",
    ]
    inline = [
      "${var.python} -m image.checks --ssh '${build.User}@${build.Host}:${build.Port}' --version '${var.version}' --report '${var.checks_report}'",
    ]
  }

  post-processor "manifest" {
    output = var.manifest
  }
}

# The AWS path rehearsed against moto: no instance to reach, so no
# provisioning and no checks, and the AMI says so in its verified tag.
build {
  name = "rehearsal"

  source "source.amazon-ebs.aws" {
    name         = "rehearsal"
    communicator = "none"
    tags         = merge(local.provenance, { "calcfleet:verified" = "false" })
  }

  post-processor "manifest" {
    output = var.manifest
  }
}
