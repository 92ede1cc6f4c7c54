"""biogate edge: the biometric core, decisions, the service and the command line.

Data flows one way: drivers -> edge.biometrics -> edge.decision -> edge.service -> firmware bridge.
Nothing in edge.biometrics knows about HTTP, databases or devices.
"""
