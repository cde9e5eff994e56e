"""The service's contract and pure values: the normalized lead, attribution, phones, the integration's settings. Imports nothing of the package."""
