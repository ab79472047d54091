E

components
	component
nameDPU
state
software-version