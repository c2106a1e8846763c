"""USD budgets: what a request reserves and settles (charges), calendar and rolling windows, and
the /spend report read from the store. Prices themselves are extproc.spend, plain data below."""
