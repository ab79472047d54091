)

interfaces
	interface
namep]1\