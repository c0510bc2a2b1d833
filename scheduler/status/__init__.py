"""The status page: quota, spend and failures at a glance, and the JSON behind it."""
