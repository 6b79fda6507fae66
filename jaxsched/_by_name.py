def from_hf(): pass
def from_keras(): pass
def from_torch(): pass
