"""Networks as a paper draws them, where no implementation follows the paper (widths made consistent)."""
