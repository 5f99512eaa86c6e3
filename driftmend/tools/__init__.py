"""The tool catalogue: every typed action or query driftmend can take, one module per target.

Stage: *act*. The same catalogue is served over MCP and used by the controller itself.
"""
