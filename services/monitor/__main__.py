from monitor.service import Monitor
from nexus.runtime import main

main(Monitor)
