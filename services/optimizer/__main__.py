from nexus.runtime import main
from optimizer.service import Optimizer

main(Optimizer)
