from nexus.runtime import main
from risk.service import Risk

main(Risk)
