"""`fairrun report`: many run directories -> one sweep DataFrame -> tables, plots, noise marks."""
