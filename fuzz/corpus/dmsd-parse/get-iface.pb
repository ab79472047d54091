?

interfaces
	interface

namep0
state
oper-status