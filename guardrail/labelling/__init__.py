"""AI-generated content labelling: text disclosure, C2PA image signing, development PKI.

Importing this package is cheap: c2pa is imported only by the modules that sign or verify.
"""
