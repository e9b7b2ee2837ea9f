# Read only by current Packer (1.7 and later), which loads every *.pkr.hcl in
# image/ when given the directory: `packer init image/ && packer build image/`.
# Packer 1.6.6 knows no required_plugins, so the bake hands it the template
# file alone. See docs/image.md.

packer {
  required_plugins {
    amazon = {
      source  = "github.com/hashicorp/amazon"
      version = ">= 1.3.0"
    }
  }
}
