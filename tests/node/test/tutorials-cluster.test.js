'use strict'

// The kafkajs tutorials against a three-node cluster, every node in the bootstrap list.
const { useBroker } = require('../harness')
const { defineTutorials } = require('../tutorials')

defineTutorials(useBroker({ nodes: 3 }))
