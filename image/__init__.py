"""The server image: Packer template, provisioning, files laid into it, and the bake."""
