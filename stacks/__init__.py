"""CloudFormation stacks of the fleet and the releases that change them."""
